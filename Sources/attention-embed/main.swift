print("attention-embed")
