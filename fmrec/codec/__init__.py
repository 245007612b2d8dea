"""The recordIO-protobuf codec shared by preprocess, the trainer and the endpoint."""
