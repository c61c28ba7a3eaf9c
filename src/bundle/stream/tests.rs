//! Unit tests of `bundle::stream`.

use super::*;
use crate::progress::Silent;

/// Input, declared size, bytes whose digest is declared, short-is-truncation, message.
type Case<'a> = (&'a [u8], u64, &'a [u8], bool, &'a str);

/// Feeds one file of `data` declared as `size` bytes with digest of `declared`.
fn feed_one(data: &[u8], size: u64, declared: &[u8], truncation: bool) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let shown = Path::new("out");
    run(&Silent, "t", size, |f| {
        f.file(
            "x",
            size,
            Some(Digest::of(declared)),
            &mut &data[..],
            Some(Destination {
                file: Target::Stream(&mut out),
                shown,
            }),
            truncation,
        )
    })?;
    Ok(out)
}

#[test]
fn both_paths_copy_check_and_reject_the_same_way() {
    // A small file (hashed inline) and a large one (hashed on the second thread).
    for len in [3usize, CHUNK * 2 + 5] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let n = len as u64;
        assert_eq!(feed_one(&data, n, &data, false).unwrap(), data, "{len}");
        let mut other = data.clone();
        other[len - 1] ^= 1;
        let cases: [Case<'_>; 4] = [
            (&data, n, &other, false, "x: SHA-256"),
            (
                &data,
                n - 1,
                &data[..len - 1],
                false,
                &format!("differs from the {} bytes", n - 1),
            ),
            (
                &data[..len - 1],
                n,
                &data,
                false,
                &format!("size {} bytes differs", n - 1),
            ),
            (&data[..len - 1], n, &data, true, "truncated"),
        ];
        for (input, size, declared, truncation, needle) in cases {
            let err = feed_one(input, size, declared, truncation)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{len}: {err}");
        }
    }
}

#[test]
fn digests_come_back_in_feeding_order_across_paths() {
    let big = vec![9u8; CHUNK + 1];
    let files: [&[u8]; 4] = [b"small", &big, b"", b"tail"];
    let ((), digests) = run(&Silent, "t", 0, |f| {
        for data in files {
            f.file("x", data.len() as u64, None, &mut &data[..], None, false)?;
        }
        Ok(())
    })
    .unwrap();
    let want: Vec<Digest> = files.iter().map(|d| Digest::of(d)).collect();
    assert_eq!(digests, want);
}

/// Feeds `data`, declared with its own digest, into the file `out` (shown as `shown`).
fn feed_to_file(data: &[u8], out: &std::fs::File, shown: &Path) -> Result<Vec<Digest>> {
    run(&Silent, "t", 0, |f| {
        f.file(
            "x",
            data.len() as u64,
            Some(Digest::of(data)),
            &mut &data[..],
            Some(Destination {
                file: Target::File(out),
                shown,
            }),
            false,
        )
    })
    .map(|((), digests)| digests)
}

#[test]
fn a_large_file_is_written_whole_whichever_thread_writes_its_chunks() {
    let data: Vec<u8> = (0..CHUNK * 5 + 123).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    for _ in 0..4 {
        let out = std::fs::File::create(&path).unwrap();
        let digests = feed_to_file(&data, &out, &path).unwrap();
        assert_eq!(digests, [Digest::of(&data)]);
        assert!(std::fs::read(&path).unwrap() == data);
    }
}

#[test]
fn a_write_that_fails_on_either_thread_fails_the_file_with_its_path() {
    // /dev/full refuses every write with ENOSPC, from the reading or the hashing thread.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("Linux has /dev/full");
    let data = vec![1u8; CHUNK * 6];
    let err = feed_to_file(&data, &full, Path::new("OS/big")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("writing OS/big"), "{message}");
    assert!(
        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(28)),
        "{err:?}"
    );
}
