use std::collections::HashMap;

use crate::task::TaskRegistration;
use crate::{Error, Result};

/// Every task linked into this program, by name.
///
/// Built once by the worker at start-up; duplicate names are an error naming both places.
#[derive(Debug, Clone)]
pub struct Registry {
    tasks: HashMap<&'static str, &'static TaskRegistration>,
}

impl Registry {
    /// Collects every `#[sitq::task]` linked into this program.
    pub fn collect() -> Result<Registry> {
        Registry::from_registrations(inventory::iter::<TaskRegistration>())
    }

    /// Builds a registry from an explicit list (for tests and tooling).
    pub fn from_registrations(
        registrations: impl IntoIterator<Item = &'static TaskRegistration>,
    ) -> Result<Registry> {
        let mut tasks = HashMap::new();
        for registration in registrations {
            if let Some(first) = tasks.insert(registration.name, registration) {
                let (first, second) = ordered(first.location(), registration.location());
                return Err(Error::DuplicateTask {
                    name: registration.name.to_owned(),
                    first,
                    second,
                });
            }
        }
        Ok(Registry { tasks })
    }

    /// The task registered under `name`.
    pub fn get(&self, name: &str) -> Option<&'static TaskRegistration> {
        self.tasks.get(name).copied()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.tasks.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// How many tasks are registered.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is registered.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

// inventory's order is unspecified: sort so the message is stable.
fn ordered(a: String, b: String) -> (String, String) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskDefaults, TaskFuture};

    fn never(_: &[u8], _: Option<&crate::TaskInputs>, _: crate::Context) -> Result<TaskFuture> {
        Err(Error::Config("not runnable".into()))
    }

    static A: TaskRegistration = TaskRegistration {
        name: "dup",
        file: "a.rs",
        line: 1,
        defaults: TaskDefaults::DEFAULT,
        run: never,
    };
    static B: TaskRegistration = TaskRegistration {
        name: "dup",
        file: "b.rs",
        line: 2,
        defaults: TaskDefaults::DEFAULT,
        run: never,
    };

    #[test]
    fn duplicate_names_name_both_places() {
        let err = Registry::from_registrations([&A, &B]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("a.rs:1") && message.contains("b.rs:2"),
            "{message}"
        );
    }
}
