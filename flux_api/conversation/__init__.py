"""What a person said, read from chats as clients send them, and clients' habits."""
