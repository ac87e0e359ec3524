//! Log set-up: human-readable text, or one JSON object per line, on stderr (command results go
//! to stdout). `RUST_LOG` filters.

use mm_actors::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix=warn,mio=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    install_panic_hook();
}

/// Routes panic reports through the log, so that JSON logs stay JSON. A panic inside an actor
/// is caught and turned into a restart (see mm_actors::supervision).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let cause = mm_actors::supervision::panic_message(info.payload());
        tracing::error!(cause = %cause, location = %location, "panic");
    }));
}
