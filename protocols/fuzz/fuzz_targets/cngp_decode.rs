#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_protocols_fuzz::cngp_decode(data));
