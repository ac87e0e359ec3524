#![no_main]
// A config file: parsed (unknown keys refused) and validated; never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = deltadefi_mm::config::parse(&String::from_utf8_lossy(data)) {
        let _ = cfg.validate();
    }
});
