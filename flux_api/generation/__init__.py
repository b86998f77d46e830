"""One generation: the pipeline, model choice, sizes, memory."""
