#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_engine::fuzzing::blob(data));
