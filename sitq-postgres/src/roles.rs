//! Least-privilege PostgreSQL roles: the SQL that creates a producer, a
//! worker and an admin group role and grants each what its sitq calls need.
//!
//! What each statement of sitq touches decides the grants; the lists below
//! say which call needs what, so a new statement that touches more is added
//! here with its reason (the `roles` test runs every call as each role).

use sitq_core::{Error, Result};

use crate::connect::latest_migration;

/// Columns of `sitq_tasks` a producer writes when it stores tasks: plain,
/// unique, with dependencies (`id` drawn first, a task stored `cancelled`
/// by a failed dependency), in workflows. Not among them: `result`,
/// `attempts`, `worker_id`, `lease_until`, `started_at`, `snoozes`, and the
/// claim count, so a producer cannot store a task as claimed or give it a
/// result.
const PRODUCER_INSERTS: &[&str] = &[
    "id",
    "name",
    "queue",
    "payload",
    "priority",
    "max_attempts",
    "run_at",
    "sequence",
    "trace_context",
    "unique_key",
    "unique_for",
    "status",
    "deps_pending",
    "after_finished",
    "input_mode",
    "has_dependents",
    "dependents_resolved",
    "workflow_id",
    "finished_at",
    "error_kind",
    "error",
    "cancel_requested_at",
    "cancelled_by",
    "cancel_reason",
];

/// Columns of `sitq_tasks` a producer updates: a unique enqueue releases
/// the keys of holders that finished (`unique_key`); an enqueue with
/// dependencies marks them (`has_dependents`) and, when one finished but
/// its dependents were not resolved yet (the instant between a completion
/// and its follow-up statement), resolves them under its lock: a blocked
/// dependent becomes pending or is cancelled (the rest). No lease, attempt,
/// worker or result column: claims, heartbeats and completions are refused.
const PRODUCER_UPDATES: &[&str] = &[
    "unique_key",
    "has_dependents",
    "dependents_resolved",
    "status",
    "deps_pending",
    "finished_at",
    "error_kind",
    "error",
    "cancel_requested_at",
    "cancelled_by",
    "cancel_reason",
];

/// Columns of `sitq_workers` a worker's beat refreshes; not
/// `drain_requested`, which only an admin sets.
const WORKER_BEAT_UPDATES: &[&str] = &[
    "host",
    "pid",
    "version",
    "queues",
    "tasks",
    "concurrency",
    "running",
    "last_seen",
    "expires_at",
];

/// One table's grants, beyond ownership (the admin role's).
struct TableGrants {
    table: &'static str,
    /// Why the roles get what they get.
    why: &'static str,
    producer: &'static [Privilege],
    worker: &'static [Privilege],
}

/// A privilege on a whole table, or on some columns.
enum Privilege {
    Table(&'static str),
    Columns(&'static str, &'static [&'static str]),
}

use Privilege::{Columns, Table};

/// Every table of sitq's schema (the `roles` test checks that none is missing).
const TABLES: &[TableGrants] = &[
    TableGrants {
        table: "sitq_migrations",
        why: "every connect checks that the schema is current",
        producer: &[Table("SELECT")],
        worker: &[Table("SELECT")],
    },
    TableGrants {
        table: "sitq_tasks",
        why: "producers store tasks and read them; workers claim, heartbeat, complete, \
              recover, enqueue follow-ups and cron ticks, and prune past retention",
        producer: &[
            Table("SELECT"),
            Columns("INSERT", PRODUCER_INSERTS),
            Columns("UPDATE", PRODUCER_UPDATES),
        ],
        worker: &[
            Table("SELECT"),
            Table("INSERT"),
            Table("UPDATE"),
            Table("DELETE"),
        ],
    },
    TableGrants {
        table: "sitq_deps",
        why: "dependency edges: stored with their tasks, read for results and workflows, \
              pruned with their tasks",
        producer: &[Table("SELECT"), Table("INSERT")],
        worker: &[Table("SELECT"), Table("INSERT"), Table("DELETE")],
    },
    TableGrants {
        table: "sitq_workflows",
        why: "stored by enqueue_workflow, read by Queue::workflow, pruned with their tasks",
        producer: &[Table("SELECT"), Table("INSERT")],
        worker: &[Table("SELECT"), Table("INSERT"), Table("DELETE")],
    },
    TableGrants {
        table: "sitq_failures",
        why: "the failure history: written by workers, read by anyone, pruned with its task",
        producer: &[Table("SELECT")],
        worker: &[Table("SELECT"), Table("INSERT"), Table("DELETE")],
    },
    TableGrants {
        table: "sitq_queues",
        why: "queue settings: only admins change them; resolving dependents reads them; a \
              claim in a limited queue locks its row (FOR UPDATE wants UPDATE on a column)",
        producer: &[Table("SELECT")],
        worker: &[Table("SELECT"), Columns("UPDATE", &["updated_at"])],
    },
    TableGrants {
        table: "sitq_queue_claims",
        why: "claim instants of rate-limited queues, kept by the claims",
        producer: &[],
        worker: &[Table("SELECT"), Table("INSERT"), Table("DELETE")],
    },
    TableGrants {
        table: "sitq_schedules",
        why: "cron schedules, registered and advanced by workers",
        producer: &[],
        worker: &[Table("SELECT"), Table("INSERT"), Table("UPDATE")],
    },
    TableGrants {
        table: "sitq_schedule_ticks",
        why: "the ticks that fired, once across workers; pruned by age",
        producer: &[],
        worker: &[
            Table("SELECT"),
            Table("INSERT"),
            Table("UPDATE"),
            Table("DELETE"),
        ],
    },
    TableGrants {
        table: "sitq_workers",
        why: "the worker registry: each worker refreshes its row and deletes expired ones; \
              only admins request a drain",
        producer: &[],
        worker: &[
            Table("SELECT"),
            Table("INSERT"),
            Columns("UPDATE", WORKER_BEAT_UPDATES),
            Table("DELETE"),
        ],
    },
    TableGrants {
        table: "sitq_audit",
        why: "the audit log of admin actions: admins only",
        producer: &[],
        worker: &[],
    },
];

/// The longest name PostgreSQL keeps whole (`NAMEDATALEN - 1`).
const MAX_NAME_BYTES: usize = 63;

/// Names of three PostgreSQL group roles (`NOLOGIN`) for sitq and the schema
/// of its tables, and [`sql`](Roles::sql): the script that creates the
/// roles and grants each what it needs. Give login roles membership
/// (`GRANT sitq_producer TO app_web`).
///
/// - **producer** (`sitq_producer`): enqueues tasks (plain, unique, with
///   dependencies, workflows, `enqueue_in`), reads tasks, results, failure
///   histories, workflows and statistics, and waits for results. Claims,
///   heartbeats, completions, cancels, retries, deletes, purges, queue
///   settings, worker registry and audit log are refused with
///   [`Error::PermissionDenied`]. It may write no result, lease, attempt or
///   worker column; it may change a task's status columns, because an
///   enqueue with dependencies sometimes resolves a finished dependency's
///   dependents itself.
/// - **worker** (`sitq_worker`): what a `sitq::Worker` does: claim,
///   heartbeat, complete, recover expired leases, enqueue follow-ups, cron
///   schedules, its registry row, and pruning finished tasks past retention
///   (so it may delete tasks). Refused: pausing or limiting queues, draining
///   workers, the audit log, migrations.
/// - **admin** (`sitq_admin`): owns sitq's tables (every operation, the
///   `sitq` admin tool, the dashboard) and may create tables in the schema
///   (migrations).
///
/// Table privileges cannot tell one producer's tasks from another's: every
/// producer reads every task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    producer: String,
    worker: String,
    admin: String,
    schema: String,
}

impl Default for Roles {
    fn default() -> Roles {
        Roles::new()
    }
}

impl Roles {
    /// `sitq_producer`, `sitq_worker` and `sitq_admin`, for tables in `public`.
    pub fn new() -> Roles {
        Roles {
            producer: "sitq_producer".into(),
            worker: "sitq_worker".into(),
            admin: "sitq_admin".into(),
            schema: "public".into(),
        }
    }

    /// The producer role's name.
    pub fn producer(mut self, name: impl Into<String>) -> Roles {
        self.producer = name.into();
        self
    }

    /// The worker role's name.
    pub fn worker(mut self, name: impl Into<String>) -> Roles {
        self.worker = name.into();
        self
    }

    /// The admin role's name.
    pub fn admin(mut self, name: impl Into<String>) -> Roles {
        self.admin = name.into();
        self
    }

    /// The schema holding sitq's tables: the first schema of the search
    /// path of the role that migrated them (`public` by default).
    pub fn schema(mut self, name: impl Into<String>) -> Roles {
        self.schema = name.into();
        self
    }

    /// The SQL script: creates the roles that do not exist (`NOLOGIN`),
    /// grants them the schema, and, once sitq's tables exist, makes the
    /// admin role their owner and grants the others what they need (after
    /// revoking what they had, so running it again after an upgrade leaves
    /// exactly this). One transaction.
    ///
    /// Run it as a superuser or as the database's owner (with the right to
    /// create roles). On a database without sitq's tables it creates the
    /// roles only: connect once as a member of the admin role (or as the
    /// owner), which creates the tables, and run it again. It fails, changing
    /// nothing, when the tables are at another schema version than this
    /// build's.
    ///
    /// [`Error::Config`] when a name is not a lowercase SQL identifier (a
    /// letter or `_`, then letters, digits or `_`, at most 63 bytes), a role
    /// name starts with `pg_` (reserved), or two roles share a name.
    pub fn sql(&self) -> Result<String> {
        self.validate()?;
        let mut sql = String::new();
        self.header(&mut sql);
        self.create_roles(&mut sql);
        self.table_grants(&mut sql);
        sql.push_str("\nCOMMIT;\n");
        Ok(sql)
    }

    fn validate(&self) -> Result<()> {
        for (what, name) in [
            ("producer role", &self.producer),
            ("worker role", &self.worker),
            ("admin role", &self.admin),
            ("schema", &self.schema),
        ] {
            check_name(what, name)?;
            if what.ends_with("role")
                && (name.starts_with("pg_") || RESERVED_ROLES.contains(&name.as_str()))
            {
                return Err(Error::Config(format!(
                    "{what} name {name:?}: reserved by PostgreSQL (so are other names starting \
                     with pg_)"
                )));
            }
        }
        if self.producer == self.worker || self.producer == self.admin || self.worker == self.admin
        {
            return Err(Error::Config(format!(
                "the producer, worker and admin roles need three different names, not {:?}, \
                 {:?} and {:?}",
                self.producer, self.worker, self.admin
            )));
        }
        Ok(())
    }

    fn header(&self, sql: &mut String) {
        let Roles {
            producer,
            worker,
            admin,
            schema,
        } = self;
        sql.push_str(&format!(
            "\
-- Least-privilege PostgreSQL roles for sitq {version} (schema version {schema_version},
-- tables in schema {schema}).
--
-- {producer}: enqueues tasks and reads them, their results, failure
--   histories and workflows, and waits for results. Cannot claim, heartbeat,
--   complete, cancel, retry, delete or purge tasks, write results, or touch
--   queue settings, workers, schedules or the audit log.
-- {worker}: what a sitq::Worker does: claims, heartbeats, completions,
--   recovery of expired leases, follow-up tasks, cron schedules, its
--   registry row, pruning finished tasks. Cannot pause or limit queues,
--   drain workers, read the audit log or migrate.
-- {admin}: owns sitq's tables: migrations and every operation (the sitq
--   admin tool, the dashboard).
--
-- Run as a superuser or the database's owner, e.g.
--   sitq postgres roles | psql \"$OWNER_URL\"
-- Without sitq's tables it creates the roles only: connect once as a
-- member of {admin} (it creates the tables), then run it again. Run it
-- again after upgrading sitq. Then give login roles membership:
--   CREATE ROLE app_web LOGIN PASSWORD '...' IN ROLE {producer};
--   CREATE ROLE app_worker LOGIN PASSWORD '...' IN ROLE {worker};
--   CREATE ROLE ops LOGIN PASSWORD '...' IN ROLE {admin};
--   ALTER ROLE ops SET role = '{admin}';  -- new tables belong to {admin}

BEGIN;

",
            version = env!("CARGO_PKG_VERSION"),
            schema_version = latest_migration(),
        ));
    }

    fn create_roles(&self, sql: &mut String) {
        let Quoted {
            producer,
            worker,
            admin,
            schema,
        } = self.quoted();
        sql.push_str(
            "-- The group roles, and the database and schema they may use.\nDO $sitq$\nBEGIN\n",
        );
        for (name, role) in [
            (&self.producer, &producer),
            (&self.worker, &worker),
            (&self.admin, &admin),
        ] {
            sql.push_str(&format!(
                "    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN\n        \
                 CREATE ROLE {role} NOLOGIN;\n    END IF;\n"
            ));
        }
        sql.push_str(&format!(
            "    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {producer}, {worker}, {admin}',\n        \
             current_database());\n\
             END\n$sitq$;\n\
             GRANT USAGE ON SCHEMA {schema} TO {producer}, {worker};\n\
             -- Migrations create tables.\n\
             GRANT USAGE, CREATE ON SCHEMA {schema} TO {admin};\n"
        ));
    }

    /// The names as quoted identifiers (reserved words such as `user` are
    /// valid names then).
    fn quoted(&self) -> Quoted {
        let quote = |name: &str| format!("\"{name}\"");
        Quoted {
            producer: quote(&self.producer),
            worker: quote(&self.worker),
            admin: quote(&self.admin),
            schema: quote(&self.schema),
        }
    }

    fn table_grants(&self, sql: &mut String) {
        let Quoted {
            producer,
            worker,
            admin,
            schema,
        } = self.quoted();
        let (schema_name, admin_name) = (&self.schema, &self.admin);
        let version = latest_migration();
        sql.push_str(&format!(
            "
-- sitq's tables, once they exist at this build's schema version.
DO $sitq$
BEGIN
    IF to_regclass('{schema}.sitq_migrations') IS NULL THEN
        RAISE NOTICE 'sitq''s tables are not in schema {schema_name} yet: roles created, \
nothing granted on tables. Connect once as a member of {admin_name} (or as the database''s \
owner) to create them, then run this script again.';
        RETURN;
    END IF;
    IF (SELECT max(version) FROM {schema}.sitq_migrations WHERE success)
            IS DISTINCT FROM {version} THEN
        RAISE EXCEPTION 'sitq''s tables in schema {schema_name} are at schema version %, and \
this script is for version {version}: run the script of the sitq that migrated them, or \
connect once with this one as a member of {admin_name} to migrate, then run it again',
            (SELECT max(version) FROM {schema}.sitq_migrations WHERE success);
    END IF;
"
        ));
        for grants in TABLES {
            let table = format!("{schema}.{}", grants.table);
            let why = wrap(&format!("{}: {}.", grants.table, grants.why), 72);
            sql.push_str(&format!(
                "\n    -- {}\n    ALTER TABLE {table} OWNER TO {admin};\n    \
                 REVOKE ALL ON {table} FROM PUBLIC, {producer}, {worker};\n",
                why.join("\n    -- ")
            ));
            for (role, privileges) in [(&producer, grants.producer), (&worker, grants.worker)] {
                // Whole-table privileges in one statement, column ones apart.
                let whole: Vec<&str> = privileges
                    .iter()
                    .filter_map(|privilege| match privilege {
                        Table(privilege) => Some(*privilege),
                        Columns(..) => None,
                    })
                    .collect();
                if !whole.is_empty() {
                    sql.push_str(&format!(
                        "    GRANT {} ON {table} TO {role};\n",
                        whole.join(", ")
                    ));
                }
                for privilege in privileges {
                    if let Columns(privilege, columns) = privilege {
                        sql.push_str(&format!(
                            "    GRANT {privilege} ({})\n        ON {table} TO {role};\n",
                            wrap(&columns.join(", "), 70).join("\n        ")
                        ));
                    }
                }
            }
        }
        sql.push_str(&format!(
            "
    -- An enqueue with dependencies draws task ids before storing them (nextval).
    EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC, {producer}, {worker}',
        pg_get_serial_sequence('{schema}.sitq_tasks', 'id'));
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO {producer}, {worker}',
        pg_get_serial_sequence('{schema}.sitq_tasks', 'id'));
END
$sitq$;
"
        ));
    }
}

/// `text` in lines of at most `width` characters, broken at spaces (a
/// longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// [`Roles`]' names as quoted SQL identifiers.
struct Quoted {
    producer: String,
    worker: String,
    admin: String,
    schema: String,
}

/// Role names PostgreSQL reserves besides those starting with `pg_`.
const RESERVED_ROLES: &[&str] = &[
    "public",
    "none",
    "current_user",
    "current_role",
    "session_user",
];

/// Checks that `name` is a lowercase SQL identifier, so that it reads the
/// same quoted or not and needs no escaping anywhere in the script.
fn check_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_NAME_BYTES;
    if valid {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what} name {name:?}: expected a lowercase SQL identifier (a letter or _, then \
             letters, digits or _, at most {MAX_NAME_BYTES} bytes)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_configurable() {
        let sql = Roles::new()
            .producer("web")
            .worker("jobs")
            .admin("ops")
            .schema("queue")
            .sql()
            .expect("valid names");
        assert!(sql.contains("CREATE ROLE \"web\" NOLOGIN;"), "{sql}");
        assert!(
            sql.contains("GRANT SELECT ON \"queue\".sitq_tasks TO \"web\";"),
            "{sql}"
        );
        assert!(
            sql.contains("ALTER TABLE \"queue\".sitq_tasks OWNER TO \"ops\";"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON \"queue\".sitq_tasks TO \"jobs\";"
            ),
            "{sql}"
        );
        assert!(!sql.contains("sitq_producer"), "{sql}");
    }

    #[test]
    fn the_producer_may_not_write_what_a_claim_or_completion_writes() {
        for column in [
            "result",
            "attempts",
            "worker_id",
            "lease_until",
            "started_at",
            "claims",
        ] {
            assert!(!PRODUCER_INSERTS.contains(&column), "{column}");
            assert!(!PRODUCER_UPDATES.contains(&column), "{column}");
        }
        let sql = Roles::new().sql().expect("default names");
        assert!(!sql.contains("DELETE ON \"public\".sitq_tasks TO \"sitq_producer\""));
        assert!(!sql.contains("ON \"public\".sitq_audit TO"), "{sql}");
    }

    #[test]
    fn bad_names_are_refused() {
        for roles in [
            Roles::new().producer("Web"),
            Roles::new().worker("jobs; DROP TABLE x"),
            Roles::new().admin(""),
            Roles::new().schema("a\"b"),
            Roles::new().admin("pg_admin"),
            Roles::new().producer("public"),
            Roles::new().worker("x".repeat(64)),
            Roles::new().worker("sitq_producer"),
        ] {
            let error = roles.sql().expect_err("refused");
            assert!(matches!(error, Error::Config(_)), "{error}");
        }
    }
}
