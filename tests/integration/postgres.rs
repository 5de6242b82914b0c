//! A database dump backed up the way people run it from cron, against a real PostgreSQL server
//! started by `tests/servers/with-s3-servers.sh`: `pg_dump` through `--stdin-from-command`, and
//! `floe dump` into `psql` on a new database.
//!
//! Without the server the test skips and says so, unless `CI=true` or `FLOE_TEST_REQUIRE_PG=1`.

use std::process::{Command, Stdio};

use crate::common::*;

struct Pg {
    host: String,
    port: String,
    user: String,
    bin: String,
}

impl Pg {
    fn from_env(test: &str) -> Option<Pg> {
        let var = |k: &str| std::env::var(format!("FLOE_TEST_PG_{k}")).ok();
        let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
            || std::env::var("FLOE_TEST_REQUIRE_PG").is_ok_and(|v| v == "1");
        match (var("HOST"), var("PORT"), var("USER"), var("BIN")) {
            (Some(host), Some(port), Some(user), Some(bin)) => Some(Pg {
                host,
                port,
                user,
                bin,
            }),
            _ if required => panic!(
                "{test}: FLOE_TEST_PG_* is not set, but the PostgreSQL test is required here; run \
                 the suite under tests/servers/with-s3-servers.sh"
            ),
            _ => {
                eprintln!(
                    "SKIPPED {test}: no PostgreSQL server (FLOE_TEST_PG_PORT is not set); run \
                     tests/servers/with-s3-servers.sh cargo test to include it"
                );
                None
            }
        }
    }

    /// The arguments that reach the server, for pg_dump and psql.
    fn conn(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.host.clone(),
            "-p".into(),
            self.port.clone(),
            "-U".into(),
            self.user.clone(),
        ]
    }

    fn tool(&self, name: &str) -> String {
        format!("{}/{name}", self.bin)
    }

    /// Runs SQL on `db` and returns what psql prints (unaligned, tuples only).
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.tool("psql"))
            .args(self.conn())
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

#[test]
fn pg_dump_through_stdin_from_command_restores_into_a_new_database() {
    let Some(pg) = Pg::from_env("pg_dump_through_stdin_from_command_restores_into_a_new_database")
    else {
        return;
    };
    let db = format!("floe_src_{}", crate::s3::unique());
    let copy = format!("floe_copy_{}", crate::s3::unique());
    pg.sql("postgres", &format!("CREATE DATABASE {db}"));
    pg.sql(
        &db,
        "CREATE TABLE items (id int PRIMARY KEY, name text, payload bytea);
         INSERT INTO items SELECT g, 'item ' || g, sha256(g::text::bytea)
         FROM generate_series(1, 200000) g;",
    );
    let env = Env::init();
    let mut dump_cmd = vec![
        "backup".to_string(),
        "--stdin-from-command".into(),
        "--stdin-filename".into(),
        "db.sql".into(),
        "--".into(),
        pg.tool("pg_dump"),
    ];
    dump_cmd.extend(pg.conn());
    dump_cmd.push(db.clone());
    env.ok(&dump_cmd);

    // floe dump | psql on a new database: the same rows.
    pg.sql("postgres", &format!("CREATE DATABASE {copy}"));
    let dumped = env.run(&["dump", "latest", "/db.sql"]);
    assert!(dumped.status.success(), "{}", stderr(&dumped));
    let mut psql = Command::new(pg.tool("psql"))
        .args(pg.conn())
        .args(["-d", &copy, "-v", "ON_ERROR_STOP=1", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start psql");
    std::io::Write::write_all(psql.stdin.as_mut().unwrap(), &dumped.stdout).unwrap();
    drop(psql.stdin.take());
    assert!(psql.wait().unwrap().success(), "psql loads the dump");
    let digest = "SELECT count(*), md5(string_agg(id || name || encode(payload, 'hex'), ',' ORDER BY id)) FROM items";
    assert_eq!(pg.sql(&copy, digest), pg.sql(&db, digest));

    // A second dump of the unchanged database deduplicates. pg_dump starts every dump with a
    // random `\restrict` key, so the chunk that holds it is new; the rest is stored already.
    let again = env.backup_json(&dump_cmd[1..]);
    let added = again["summary"]["bytes_added"].as_u64().unwrap();
    let read = again["summary"]["bytes_read"].as_u64().unwrap();
    assert!(read > 8 << 20, "the dump is {read} bytes");
    assert!(
        added < read / 2,
        "a second dump of {read} bytes added {added}"
    );

    // pg_dump of a database that does not exist: exit 1, no snapshot.
    let before = env.ok(&["snapshots", "--json"]);
    let mut bad = dump_cmd.clone();
    *bad.last_mut().unwrap() = "no_such_database_floe".into();
    let out = env.run(&bad);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no_such_database_floe") && err.contains("exit status: 1"),
        "{err}"
    );
    assert_eq!(env.ok(&["snapshots", "--json"]), before);
    pg.sql("postgres", &format!("DROP DATABASE {db}"));
    pg.sql("postgres", &format!("DROP DATABASE {copy}"));
}
