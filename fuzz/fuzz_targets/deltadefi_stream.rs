#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mm_actors::fuzz_harness::deltadefi_stream(data));
