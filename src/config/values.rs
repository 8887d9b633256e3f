//! The effective value of every key of a valid file, defaults filled in.
//!
//! The walker produces [`Values`] only when the whole file is valid, so every key of
//! [`super::keys::KEYS`] has a value of its kind here (or none, for a string whose default is
//! unset). The typed getters rely on that and panic otherwise: a panic here is a bug in the key
//! table or in the code reading it, which the unit tests of this module's users catch.

use std::collections::BTreeMap;
use std::time::Duration;

use actors::settings::ClientProperties;

use super::keys::Key;

/// One effective value. Choices are kept by name.
#[derive(Debug, Clone)]
pub(super) enum Setting {
    Str(String),
    Int(i64),
    Bool(bool),
    /// `Debug` prints only the property names: values may be secrets.
    Properties(ClientProperties),
}

/// Effective values by key path. `Debug` never shows a property value.
#[derive(Debug, Clone, Default)]
pub(super) struct Values(BTreeMap<&'static str, Setting>);

impl Values {
    pub fn set(&mut self, key: &Key, setting: Setting) {
        self.0.insert(key.path, setting);
    }

    pub fn get(&self, key: &Key) -> Option<&Setting> {
        self.0.get(key.path)
    }

    /// A string or choice key that may be unset.
    pub fn optional_str(&self, key: &Key) -> Option<&str> {
        match self.get(key) {
            None => None,
            Some(Setting::Str(value)) => Some(value),
            Some(other) => panic!("`{}` is not a string: {other:?}", key.path),
        }
    }

    pub fn str(&self, key: &Key) -> &str {
        self.optional_str(key)
            .unwrap_or_else(|| panic!("`{}` has no value", key.path))
    }

    pub fn string(&self, key: &Key) -> String {
        self.str(key).to_owned()
    }

    pub fn int(&self, key: &Key) -> i64 {
        match self.get(key) {
            Some(Setting::Int(value)) => *value,
            other => panic!("`{}` is not an integer: {other:?}", key.path),
        }
    }

    /// A size or count; the key's range is within `0..`, so only saturation on 32-bit targets.
    pub fn size(&self, key: &Key) -> usize {
        usize::try_from(self.int(key)).unwrap_or(usize::MAX)
    }

    pub fn millis(&self, key: &Key) -> Duration {
        Duration::from_millis(u64::try_from(self.int(key)).unwrap_or(0))
    }

    pub fn bool(&self, key: &Key) -> bool {
        match self.get(key) {
            Some(Setting::Bool(value)) => *value,
            other => panic!("`{}` is not a boolean: {other:?}", key.path),
        }
    }

    /// The value of a choice key, given what each of its option names means.
    pub fn choice<T: Copy>(&self, key: &Key, options: &[(&str, T)]) -> T {
        let name = self.str(key);
        options
            .iter()
            .find(|(option, _)| *option == name)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("`{}`: no meaning given for {name:?}", key.path))
    }

    pub fn properties(&self, key: &Key) -> &ClientProperties {
        match self.get(key) {
            Some(Setting::Properties(properties)) => properties,
            other => panic!("`{}` is not a properties table: {other:?}", key.path),
        }
    }
}
