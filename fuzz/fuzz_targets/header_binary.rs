#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| karman_protocol::fuzz_harness::header_binary(data));
