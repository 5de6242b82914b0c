#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_engine::fuzzing::sealed_file(data));
