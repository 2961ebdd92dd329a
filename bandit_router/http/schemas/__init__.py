"""The API's request bodies as msgspec Structs, each field's bounds and description written
once: request validation (`decode`), the 400 answers (`errors`) and the OpenAPI document's
request schemas all come from them. Converting into the core's frozen types stays in
`http/wire.py`; the core never sees msgspec."""
