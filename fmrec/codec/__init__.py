"""The recordIO-protobuf (aialgs.data.Record) codec shared by preprocess, the trainer and the endpoint.

Byte-identical to SageMaker SDK 2.x, vectorised with numpy. Import from the module that holds the name:
- `wire`: format constants, `RecordIOError`, varints and the record template the writer and readers share;
- `writer`: `write_spmatrix`, `write_spmatrix_file`, `encode_request`;
- `reader`: `iter_records`, `iter_spmatrix`, `read_spmatrix`, `decode_request`;
- `parse`: record framing and the generic parse of any record layout;
- `fast_parse`: the vectorised parse of records in the writer's own layout;
- `predictions`: `encode_predictions`, `decode_predictions` (inference responses).
"""
