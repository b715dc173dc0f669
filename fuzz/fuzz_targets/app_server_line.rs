#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::app_server_line(data));
