//! The conformance suite every backend must pass: the memory and local backends, and every backend
//! added later, run the same checks.
//!
//! Each check panics with a message naming what broke; tests call [`run_all`] on a fresh, empty
//! store created with [`Backend::create`].

use super::{Backend, FileType, CONFIG_ID};
use crate::storage::BackendError;

fn id(n: u32) -> [u8; 32] {
    let mut out = *blake3::hash(&n.to_le_bytes()).as_bytes();
    out[31] = 0x77; // ids the suite made, never a real hash collision
    out
}

/// Runs every check, in order, against an empty store.
pub fn run_all<B: Backend + ?Sized>(b: &B) {
    empty_store_lists_nothing(b);
    write_then_read(b);
    range_reads(b);
    missing_objects(b);
    overwrite_replaces(b);
    list_reports_sizes_per_type(b);
    remove_removes(b);
    config_has_a_fixed_name(b);
    staged_objects(b);
    many_objects_are_all_listed(b, 1100);
}

/// An object written in pieces ([`Backend::stage`]) is invisible until committed, then reads as
/// its pieces joined, in a pack folder and elsewhere; one dropped uncommitted leaves nothing.
/// Storage that takes objects whole only has nothing to check.
pub fn staged_objects<B: Backend + ?Sized>(b: &B) {
    for (n, t) in [
        (40, FileType::DataPack),
        (41, FileType::TreePack),
        (42, FileType::Index),
    ] {
        let Some(mut staged) = b.stage(t).expect("stage") else {
            return;
        };
        let pieces: [&[u8]; 3] = [b"first piece, ", b"", &[0xa5; 70_000]];
        for p in pieces {
            staged.append(p).expect("append");
        }
        assert_eq!(staged.len(), 70_013, "{t:?} staged length");
        assert!(
            b.list(t).expect("list").is_empty(),
            "a staged {t:?} object is listed before its commit"
        );
        staged.commit(&id(n)).expect("commit");
        assert_eq!(b.read(t, &id(n)).expect("read"), pieces.concat());
        let listed = b.list(t).expect("list");
        assert_eq!(listed.len(), 1, "{t:?} listing after one commit");
        assert_eq!(listed[0].size, 70_013);
        b.remove(t, &id(n)).expect("remove");
        let removed = format!("a removed {t:?} object is still listed after 10 s");
        until_nothing_listed(b, t, &removed);

        let mut dropped = b
            .stage(t)
            .expect("stage")
            .expect("stages once, stages again");
        dropped.append(b"never committed").expect("append");
        drop(dropped);
        assert!(
            b.list(t).expect("list").is_empty(),
            "a dropped staged {t:?} object is listed"
        );
    }
}

/// Waits until `t` lists nothing, so that a check after a removal tests what it means to: an
/// object store may list a removed object a moment longer (Garage's cluster did, once in many
/// runs). Panics with `what` after 10 s.
fn until_nothing_listed<B: Backend + ?Sized>(b: &B, t: FileType, what: &str) {
    let start = std::time::Instant::now();
    while !b.list(t).expect("list").is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A fresh store lists no object of any type.
pub fn empty_store_lists_nothing<B: Backend + ?Sized>(b: &B) {
    for t in FileType::ALL {
        assert!(
            b.list(t).expect("list").is_empty(),
            "fresh store lists {t:?} objects"
        );
    }
}

/// Bytes written are the bytes read, for every type, including an empty object.
pub fn write_then_read<B: Backend + ?Sized>(b: &B) {
    for (i, t) in FileType::ALL.iter().enumerate() {
        if *t == FileType::Config {
            continue;
        }
        let data: Vec<u8> = (0..1000u32 + i as u32)
            .map(|x| (x * 7 + i as u32) as u8)
            .collect();
        b.write(*t, &id(i as u32), &data).expect("write");
        assert_eq!(
            b.read(*t, &id(i as u32)).expect("read"),
            data,
            "{t:?} read back differs"
        );
        b.remove(*t, &id(i as u32)).expect("remove");
    }
    b.write(FileType::Snapshot, &id(99), b"")
        .expect("write empty");
    assert_eq!(
        b.read(FileType::Snapshot, &id(99)).expect("read empty"),
        b""
    );
    b.remove(FileType::Snapshot, &id(99)).expect("remove");
}

/// Range reads return exactly the range; ranges past the end fail.
pub fn range_reads<B: Backend + ?Sized>(b: &B) {
    let data: Vec<u8> = (0..100_000u32).map(|x| (x % 251) as u8).collect();
    b.write(FileType::DataPack, &id(1), &data).expect("write");
    for (off, len) in [
        (0u64, 1u64),
        (0, 100_000),
        (99_999, 1),
        (12_345, 54_321),
        (50_000, 0),
    ] {
        let got = b
            .read_range(FileType::DataPack, &id(1), off, len)
            .expect("range read");
        assert_eq!(
            got,
            &data[off as usize..(off + len) as usize],
            "range {off}+{len}"
        );
        let mut streamed = Vec::new();
        b.read_range_with(FileType::DataPack, &id(1), off, len, &mut |bytes| {
            streamed.extend_from_slice(bytes)
        })
        .expect("streamed range read");
        assert_eq!(streamed, got, "streamed range {off}+{len}");
    }
    assert!(
        b.read_range(FileType::DataPack, &id(1), 99_990, 20)
            .is_err(),
        "a range past the end must fail"
    );
    assert!(
        b.read_range_with(FileType::DataPack, &id(1), 99_990, 20, &mut |_| {})
            .is_err(),
        "a streamed range past the end must fail"
    );
    b.remove(FileType::DataPack, &id(1)).expect("remove");
}

/// Reading or removing what does not exist is a NotFound error.
pub fn missing_objects<B: Backend + ?Sized>(b: &B) {
    match b.read(FileType::Index, &id(5)) {
        Err(BackendError::NotFound { .. }) => {}
        other => panic!("read of a missing object gave {other:?}"),
    }
    assert!(b.read_range(FileType::TreePack, &id(5), 0, 1).is_err());
    assert!(b.remove(FileType::Key, &id(5)).is_err());
}

/// A second write of the same name replaces the first.
pub fn overwrite_replaces<B: Backend + ?Sized>(b: &B) {
    b.write(FileType::Lock, &id(3), b"first").expect("write");
    b.write(FileType::Lock, &id(3), b"second!")
        .expect("overwrite");
    assert_eq!(b.read(FileType::Lock, &id(3)).expect("read"), b"second!");
    b.remove(FileType::Lock, &id(3)).expect("remove");
}

/// Listing returns each object once with its size, under its own type only.
pub fn list_reports_sizes_per_type<B: Backend + ?Sized>(b: &B) {
    b.write(FileType::TreePack, &id(10), &[1; 10])
        .expect("write");
    b.write(FileType::DataPack, &id(11), &[2; 20])
        .expect("write");
    b.write(FileType::DataPack, &id(12), &[3; 30])
        .expect("write");
    let tree = b.list(FileType::TreePack).expect("list");
    assert_eq!(tree.len(), 1);
    assert_eq!((tree[0].id, tree[0].size), (id(10), 10));
    let mut data: Vec<_> = b
        .list(FileType::DataPack)
        .expect("list")
        .into_iter()
        .map(|e| (e.id, e.size))
        .collect();
    data.sort();
    let mut want = vec![(id(11), 20), (id(12), 30)];
    want.sort();
    assert_eq!(data, want);
    for (t, n) in [
        (FileType::TreePack, 10),
        (FileType::DataPack, 11),
        (FileType::DataPack, 12),
    ] {
        b.remove(t, &id(n)).expect("remove");
    }
}

/// Removed objects are gone from reads and listings.
pub fn remove_removes<B: Backend + ?Sized>(b: &B) {
    b.write(FileType::Snapshot, &id(20), b"s").expect("write");
    b.remove(FileType::Snapshot, &id(20)).expect("remove");
    assert!(b.read(FileType::Snapshot, &id(20)).is_err());
    assert!(b.list(FileType::Snapshot).expect("list").is_empty());
}

/// The config is one object, listed with the fixed config id.
pub fn config_has_a_fixed_name<B: Backend + ?Sized>(b: &B) {
    b.write(FileType::Config, &CONFIG_ID, b"cfg")
        .expect("write config");
    assert_eq!(
        b.read(FileType::Config, &CONFIG_ID).expect("read config"),
        b"cfg"
    );
    let l = b.list(FileType::Config).expect("list config");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].size, 3);
    b.remove(FileType::Config, &CONFIG_ID)
        .expect("remove config");
    assert!(b.list(FileType::Config).expect("list").is_empty());
}

/// Listing is complete past the page sizes of object stores (1000 keys per page on S3).
pub fn many_objects_are_all_listed<B: Backend + ?Sized>(b: &B, count: u32) {
    // Several writers at once, as backups do; object stores answer each request slowly.
    let each = |f: &(dyn Fn(u32) + Sync)| {
        std::thread::scope(|s| {
            for t in 0..8 {
                s.spawn(move || (0..count).filter(|n| n % 8 == t).for_each(f));
            }
        })
    };
    each(&|n| {
        b.write(FileType::Index, &id(1000 + n), &n.to_le_bytes())
            .expect("write")
    });
    let mut listed: Vec<_> = b
        .list(FileType::Index)
        .expect("list")
        .into_iter()
        .map(|e| e.id)
        .collect();
    listed.sort();
    let mut want: Vec<_> = (0..count).map(|n| id(1000 + n)).collect();
    want.sort();
    assert_eq!(listed, want, "listing of {count} objects is incomplete");
    each(&|n| b.remove(FileType::Index, &id(1000 + n)).expect("remove"));
}
