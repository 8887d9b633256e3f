//! Log-related helpers: the layer that turns coded log lines into the errors metric.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Counts every warning and error log line that carries a `code` field in
/// `kafka_oss_sink_errors_total{code, level}`: one place that sees every coded failure, so the
/// dashboard's "errors by code" panel matches the log.
pub struct ErrorCodeCounter;

impl<S: Subscriber> Layer<S> for ErrorCodeCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let label = match level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => return,
        };
        let mut code = CodeField(None);
        event.record(&mut code);
        if let Some(code) = code.0 {
            actors::metrics::record_error(&code, label);
        }
    }
}

struct CodeField(Option<String>);

impl Visit for CodeField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "code" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "code" && self.0.is_none() {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}
