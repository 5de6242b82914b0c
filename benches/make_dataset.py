#!/usr/bin/env python3
"""Build a reproducible mixed dataset for end-to-end backup benchmarks.

Usage:
    benches/make_dataset.py OUTPUT_DIR [--scale 1.0] [--seed 42] [--summary-json FILE]

At --scale 1.0 the dataset is about 1 GiB and holds:

  small/      ~5000 files of 1-64 KiB in nested folders, half text-like
              (log/prose lines), half binary-like (random bytes mixed with
              zero runs and repeated records)
  logs/       3 large text-like files (timestamped log lines built from a
              seeded word list; zstd compresses them several times)
  blobs/      2 large incompressible files (seeded random bytes)
  dups/       an exact copy of one large log file, a copy of one random blob
              with 100 bytes inserted near its start (shifted duplicate, which
              content-defined chunking should still mostly deduplicate), and
              exact copies of ~10 % of the small files under other names

Every file's bytes come from a random.Random seeded with (seed, file name),
so the same seed and scale always give identical bytes, independent of the
order files are written in.  Only the Python standard library is used.
"""

import argparse
import json
import os
import random
import shutil
import sys
import time

KIB = 1024
MIB = 1024 * 1024

# Sizes at scale 1.0 (all scaled linearly, with small floors).
SMALL_FILES = 5000
SMALL_MIN, SMALL_MAX = 1 * KIB, 64 * KIB
LOG_FILES = 3
LOG_SIZE = 104 * MIB
BLOB_FILES = 2
BLOB_SIZE = 144 * MIB
SMALL_DUP_FRACTION = 0.10

WRITE_BLOCK = 8 * MIB


def rng_for(seed, name):
    # str seeds are hashed with SHA-512 (random seed version 2): stable.
    return random.Random(f"floe-bench:{seed}:{name}")


class Vocabulary:
    """Seeded word list and a pool of log-message bodies built from it."""

    LEVELS = ["INFO"] * 12 + ["DEBUG"] * 6 + ["WARN"] * 2 + ["ERROR"]

    def __init__(self, seed):
        r = rng_for(seed, "vocabulary")
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
        words = set()
        while len(words) < 3000:
            n = r.choice((2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 11))
            words.add("".join(r.choices(letters, weights, k=n)))
        self.words = sorted(words)
        r.shuffle(self.words)
        # Zipf-like word frequencies, as in natural text (cumulative weights,
        # precomputed so random.choices does not redo the sum on every call).
        cum = []
        acc = 0.0
        for i in range(len(self.words)):
            acc += 1.0 / (i + 1)
            cum.append(acc)
        self.word_cum = cum
        self.components = ["".join(r.choices(letters, k=r.randint(4, 9))) for _ in range(40)]
        # Pool of distinct message bodies; log lines are drawn from it with
        # varying numbers, so text repeats at line level like real logs.
        self.messages = []
        for _ in range(20000):
            k = r.randint(3, 16)
            body = " ".join(r.choices(self.words, cum_weights=cum, k=k))
            if r.random() < 0.5:
                body += f" id={r.randrange(1 << 32):08x}"
            if r.random() < 0.4:
                body += f" took {r.randint(0, 5000)}ms"
            self.messages.append(body)
        self.lines = [
            f"{r.choice(self.LEVELS):5} [{r.choice(self.components)}] {m}\n" for m in self.messages
        ]
        # Pool of prose sentences for the small text-like files.
        self.sentences = []
        for _ in range(20000):
            k = r.randint(6, 24)
            words = r.choices(self.words, cum_weights=cum, k=k)
            self.sentences.append(" ".join(words).capitalize() + ".\n")

    def prose(self, r, size):
        """Text-like bytes of exactly `size` bytes (sentences of words)."""
        # Sentences average ~70 bytes; draw enough, then top up if short.
        out = "".join(r.choices(self.sentences, k=size // 40 + 1))
        while len(out) < size:
            out += "".join(r.choices(self.sentences, k=64))
        return out.encode()[:size]

    def log_block(self, r, t0, nlines):
        """`nlines` log lines starting at timestamp t0 (seconds); returns (bytes, t_end)."""
        chosen = r.choices(self.lines, k=nlines)
        # One timestamp prefix per group of 16 lines keeps this fast while
        # still giving monotonically increasing, log-like timestamps.
        parts = []
        t = t0
        for i in range(0, nlines, 16):
            tm = time.gmtime(t)
            prefix = "%04d-%02d-%02dT%02d:%02d:%02d." % tm[:6]
            ms = r.randrange(1000)
            pre = f"{prefix}{ms:03d}Z "
            parts.extend(pre + line for line in chosen[i:i + 16])
            t += r.randint(0, 3)
        return "".join(parts).encode(), t


def write_log_file(path, vocab, r, size):
    t = 1714521600 + r.randrange(86400 * 30)  # some time in May 2024
    written = 0
    with open(path, "wb") as f:
        while written < size:
            block, t = vocab.log_block(r, t, 40000)
            block = block[: size - written]
            f.write(block)
            written += len(block)
    return written


def write_random_file(path, r, size):
    written = 0
    with open(path, "wb") as f:
        while written < size:
            n = min(WRITE_BLOCK, size - written)
            f.write(r.randbytes(n))
            written += n
    return written


def binary_like(r, size):
    """Random segments interleaved with zero runs and repeated records."""
    parts = [b"\x7fBIN" + r.randbytes(12)]
    total = 16
    while total < size:
        kind = r.random()
        n = r.randint(64, 4096)
        if kind < 0.5:
            seg = r.randbytes(n)
        elif kind < 0.7:
            seg = bytes(n)
        else:
            rec = r.randbytes(r.choice((4, 8, 16, 32)))
            seg = rec * (n // len(rec) + 1)
        parts.append(seg)
        total += len(seg)
    return b"".join(parts)[:size]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", help="folder to create (must not exist or be empty)")
    ap.add_argument("--scale", type=float, default=1.0, help="size factor; 1.0 is about 1 GiB")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--summary-json", help="also write the summary as JSON to this file")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")

    out = os.path.abspath(args.output)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        ap.error(f"{out} exists and is not an empty folder")
    os.makedirs(out, exist_ok=True)

    started = time.monotonic()
    seed = args.seed
    s = args.scale
    n_small = max(20, round(SMALL_FILES * s))
    log_size = max(64 * KIB, round(LOG_SIZE * s))
    blob_size = max(64 * KIB, round(BLOB_SIZE * s))

    vocab = Vocabulary(seed)
    files = []  # (relative path, size)

    def record(rel, size):
        files.append((rel, size))

    # Small files, in a nested tree: small/dNN/sN[/deeper]/...
    layout = rng_for(seed, "layout")
    small_paths = []
    for i in range(n_small):
        r = rng_for(seed, f"small/{i}")
        d1 = layout.randrange(20)
        d2 = layout.randrange(5)
        parts = ["small", f"d{d1:02d}", f"s{d2}"]
        if layout.random() < 0.3:
            parts.append(f"deep{layout.randrange(3)}")
        size = r.randint(SMALL_MIN, SMALL_MAX)
        if i % 2 == 0:
            name = f"note-{i:05d}.txt"
            data = vocab.prose(r, size)
        else:
            name = f"data-{i:05d}.bin"
            data = binary_like(r, size)
        rel = os.path.join(*parts, name)
        os.makedirs(os.path.join(out, *parts), exist_ok=True)
        with open(os.path.join(out, rel), "wb") as f:
            f.write(data)
        small_paths.append(rel)
        record(rel, len(data))

    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    log_paths = []
    for i in range(LOG_FILES):
        rel = os.path.join("logs", f"service-{i}.log")
        n = write_log_file(os.path.join(out, rel), vocab, rng_for(seed, rel), log_size)
        log_paths.append(rel)
        record(rel, n)

    os.makedirs(os.path.join(out, "blobs"), exist_ok=True)
    blob_paths = []
    for i in range(BLOB_FILES):
        rel = os.path.join("blobs", f"random-{i}.bin")
        n = write_random_file(os.path.join(out, rel), rng_for(seed, rel), blob_size)
        blob_paths.append(rel)
        record(rel, n)

    # Duplicates.
    os.makedirs(os.path.join(out, "dups", "small"), exist_ok=True)
    rel = os.path.join("dups", "service-0-copy.log")
    shutil.copyfile(os.path.join(out, log_paths[0]), os.path.join(out, rel))
    record(rel, log_size)

    rel = os.path.join("dups", "random-0-shifted.bin")
    r = rng_for(seed, rel)
    insert_at = min(blob_size // 2, 1 * MIB + r.randrange(4096))
    with open(os.path.join(out, blob_paths[0]), "rb") as src, open(os.path.join(out, rel), "wb") as dst:
        dst.write(src.read(insert_at))
        dst.write(r.randbytes(100))
        shutil.copyfileobj(src, dst, WRITE_BLOCK)
    record(rel, blob_size + 100)

    r = rng_for(seed, "dups/small")
    n_dup = max(2, round(n_small * SMALL_DUP_FRACTION))
    for j, src_rel in enumerate(sorted(r.sample(small_paths, n_dup))):
        rel = os.path.join("dups", "small", f"copy-{j:04d}-{os.path.basename(src_rel)}")
        shutil.copyfile(os.path.join(out, src_rel), os.path.join(out, rel))
        record(rel, os.path.getsize(os.path.join(out, rel)))

    total = sum(size for _, size in files)
    summary = {
        "path": out,
        "seed": seed,
        "scale": s,
        "files": len(files),
        "bytes": total,
        "small_files": n_small,
        "small_bytes": sum(sz for p, sz in files if p.startswith("small" + os.sep)),
        "log_files": LOG_FILES,
        "log_bytes_each": log_size,
        "blob_files": BLOB_FILES,
        "blob_bytes_each": blob_size,
        "duplicate_files": 2 + n_dup,
        "duplicate_bytes": sum(sz for p, sz in files if p.startswith("dups" + os.sep)),
        "seconds": round(time.monotonic() - started, 2),
    }
    print(
        f"dataset {out}: {summary['files']} files, {total} bytes "
        f"({total / MIB:.1f} MiB; small {summary['small_bytes'] / MIB:.1f} MiB, "
        f"logs {LOG_FILES}x{log_size / MIB:.1f} MiB, blobs {BLOB_FILES}x{blob_size / MIB:.1f} MiB, "
        f"duplicates {summary['duplicate_bytes'] / MIB:.1f} MiB) in {summary['seconds']} s"
    )
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
