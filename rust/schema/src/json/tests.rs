//! Tests of the JSON Schema transcoder.
