//! `floe snapshots` and `floe ls`: tags, hosts, times, JSON.

use std::fs;

use crate::common::*;

#[test]
fn tags_host_and_time_are_recorded() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/f"), b"x").unwrap();
    env.ok(&[
        "backup".as_ref(),
        "--tag".as_ref(),
        "daily".as_ref(),
        "--tag".as_ref(),
        "db".as_ref(),
        "--host".as_ref(),
        "imported".as_ref(),
        "--time".as_ref(),
        "2021-03-28T01:30:00+01:00".as_ref(),
        src.as_os_str(),
    ]);
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let s = &snaps[0];
    assert_eq!(s["hostname"], "imported");
    assert_eq!(s["tags"], serde_json::json!(["daily", "db"]));
    assert_eq!(s["time"], "2021-03-28T01:30:00+01:00");
    assert_eq!(s["paths"], serde_json::json!([src.to_str().unwrap()]));
    assert_eq!(s["id"].as_str().unwrap().len(), 64);
    let table = env.ok(&["snapshots"]);
    assert!(
        table.contains("imported")
            && table.contains("daily,db")
            && table.contains("2021-03-28 01:30:00 +01:00"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.trim() == "1 snapshot"), "{table}");

    let short = &s["short_id"].as_str().unwrap()[..6];
    let listing = env.ok(&["ls", short, &format!("{}/sub", src.display())]);
    assert_eq!(listing.trim(), format!("{}/sub/f", src.display()));
    let long = env.ok(&[
        "ls",
        "--long",
        "latest",
        &format!("{}/sub/f", src.display()),
    ]);
    assert!(long.starts_with("-0"), "{long}");
    let out = env.run(&["ls", "ffffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no snapshot matches"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ls_refuses_a_path_that_continues_below_a_file() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup".as_ref(), src.as_os_str()]);
    let out = env.run(&["ls", "latest", &format!("{}/f/below", src.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not found in snapshot"),
        "{}",
        stderr(&out)
    );
    let listing = env.ok(&["ls", "latest", &format!("{}/f", src.display())]);
    assert_eq!(listing.trim(), format!("{}/f", src.display()));
}
