"""Pictures: sniffing, crops and conversions, the lossless JPEG crop, input images."""
