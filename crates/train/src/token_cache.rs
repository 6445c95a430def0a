//! The token cache: every example of a processed dataset tokenized once,
//! stored beside the data and memory-mapped by later runs.
//!
//! Building the source text prunes the schema to the token budget, which
//! tokenizes it several times; doing that for every example drawn made
//! tokenization a large share of a step. The cache lives in
//! `<processed_dir>/token_cache/<key>/`, where the key is a SHA-256 of
//! everything that decides the ids: the cache format, the encoder's
//! version, the tokenizer files, the full [`InputFormat`] and the dataset's
//! `manifest.json`. A cache whose key differs is never used.
//!
//! Each split is one file, `<split>.tokens`, little-endian:
//!
//! | bytes | content |
//! |---|---|
//! | 80 | header: magic, format version, token width (2 or 4 bytes), rows, token count, the two section positions, the 32-byte key |
//! | tokens × width | every row's source ids then target ids, rows in split order |
//! | 0–7 | padding to a multiple of 8 |
//! | (2 × rows + 1) × 8 | offsets: row `i`'s source is tokens `[o[2i], o[2i+1])`, its target `[o[2i+1], o[2i+2])` |
//! | rows × 16 | (example id, row) pairs sorted by id, to find a sampled example |
//!
//! Rows are indexed as [`SplitReader::get`] indexes them. `meta.json` holds
//! the key's inputs in readable form and the counts. A build writes into a
//! temporary folder and renames it into place, so concurrent builders never
//! corrupt each other: the first rename wins and the others use its files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use memmap2::Mmap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use text2sql_data::atomic;
use text2sql_data::loader::{ProcessedDataset, SplitReader};
use text2sql_data::prepare::Split;
use text2sql_data::store::MANIFEST_FILE;
use text2sql_model::InputFormat;

use crate::encode::{Encoded, ExampleEncoder};
use crate::error::{Result, TrainError};

/// Folder of the caches inside a processed dataset.
pub const TOKEN_CACHE_DIR: &str = "token_cache";

/// Version of the file layout; part of the key.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// Readable description of a cache, beside the split files.
pub const META_FILE: &str = "meta.json";

const MAGIC: &[u8; 8] = b"T2SQTOKC";
const HEADER_LEN: usize = 80;
/// Leading rows of each split re-encoded when a cache is reused: a cheap
/// check that the encoding code has not changed since the cache was built.
const SPOT_CHECK_ROWS: u64 = 4;

/// How [`TokenCache::open_or_build`] treats an existing cache.
#[derive(Debug, Clone, Default)]
pub struct TokenCacheOptions {
    /// Build a fresh cache even when a valid one exists, and replace it.
    pub rebuild: bool,
    /// Threads that encode a build; `None` uses rayon's global pool. The
    /// files are the same whatever the count.
    pub threads: Option<usize>,
}

/// What the cache reports while it is opened or built.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheEvent<'a> {
    /// A build starts: `examples` rows of train and val will be encoded
    /// into `dir`.
    Building { dir: &'a Path, examples: u64 },
    /// Examples encoded so far during a build.
    Encoded { done: u64, total: u64 },
    /// A cache that could not be used (and is being rebuilt), or cleanup
    /// that failed; training continues.
    Warning(String),
}

/// Whether this run built the cache or found it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum CacheOrigin {
    /// Encoded in this run. When another process finished the same build
    /// first, its files are used and this one's are discarded.
    Built { examples: u64, seconds: f64 },
    /// A valid cache from an earlier run was mapped.
    Reused,
}

/// Everything the key is made of, kept readable in `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKeyInputs {
    pub cache_format_version: u32,
    /// Version of the crates that turn an example into text and ids.
    pub encoder_version: String,
    /// SHA-256 of each tokenizer file, by file name.
    pub tokenizer_files: BTreeMap<String, String>,
    pub input_format: InputFormat,
    /// SHA-256 of the processed dataset's `manifest.json`.
    pub manifest_sha256: String,
}

impl CacheKeyInputs {
    /// Hashes the tokenizer files and the dataset's manifest.
    pub fn new(
        tokenizer_files: &[PathBuf],
        input_format: &InputFormat,
        dataset_dir: &Path,
    ) -> Result<Self> {
        let mut files = BTreeMap::new();
        for path in tokenizer_files {
            let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            files.insert(name, hex::encode(Sha256::digest(&bytes)));
        }
        let manifest = dataset_dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&manifest).map_err(|e| TrainError::io(&manifest, e))?;
        Ok(Self {
            cache_format_version: CACHE_FORMAT_VERSION,
            encoder_version: env!("CARGO_PKG_VERSION").to_string(),
            tokenizer_files: files,
            input_format: input_format.clone(),
            manifest_sha256: hex::encode(Sha256::digest(&bytes)),
        })
    }

    /// The SHA-256 of the inputs' JSON.
    pub fn digest(&self) -> Result<[u8; 32]> {
        let json = serde_json::to_vec(self).map_err(|source| TrainError::Json {
            path: PathBuf::from(META_FILE),
            source,
        })?;
        Ok(Sha256::digest(&json).into())
    }
}

/// Counts of one split, in `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitCounts {
    pub examples: u64,
    pub source_tokens: u64,
    pub target_tokens: u64,
    pub longest_source: u64,
    pub longest_target: u64,
}

/// The content of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMeta {
    pub key: String,
    pub inputs: CacheKeyInputs,
    /// The dataset folder the cache was built from, for people reading it.
    pub dataset_dir: PathBuf,
    pub token_width_bytes: u32,
    pub train: SplitCounts,
    pub val: SplitCounts,
    pub created_at_unix_s: u64,
    pub build_seconds: f64,
}

/// Bytes per stored token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenWidth {
    /// Vocabularies of at most 65,536 ids.
    U16,
    U32,
}

impl TokenWidth {
    /// The narrowest width that holds every id of a vocabulary.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= usize::from(u16::MAX) + 1 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }

    fn from_bytes(bytes: u32) -> Option<Self> {
        match bytes {
            2 => Some(TokenWidth::U16),
            4 => Some(TokenWidth::U32),
            _ => None,
        }
    }

    fn read(self, bytes: &[u8], i: usize) -> Option<u32> {
        match self {
            TokenWidth::U16 => {
                let b = bytes.get(2 * i..2 * i + 2)?;
                Some(u32::from(u16::from_le_bytes([b[0], b[1]])))
            }
            TokenWidth::U32 => {
                let b = bytes.get(4 * i..4 * i + 4)?;
                Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
        }
    }
}

/// A run of token ids inside a mapped cache file, read without copying.
#[derive(Debug, Clone, Copy)]
pub struct TokenIds<'a> {
    bytes: &'a [u8],
    width: TokenWidth,
}

impl<'a> TokenIds<'a> {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.width.bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<u32> {
        self.width.read(self.bytes, i)
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        let (bytes, width) = (self.bytes, self.width);
        (0..self.len()).filter_map(move |i| width.read(bytes, i))
    }

    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }
}

/// One example's ids as stored in the cache.
#[derive(Debug, Clone, Copy)]
pub struct CachedExample<'a> {
    pub source: TokenIds<'a>,
    pub target: TokenIds<'a>,
}

impl CachedExample<'_> {
    /// The ids as owned vectors, the form batches are padded from.
    pub fn to_encoded(&self) -> Encoded {
        Encoded {
            source: self.source.to_vec(),
            target: self.target.to_vec(),
        }
    }
}

/// The fixed-size start of a split file.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    width: TokenWidth,
    rows: u64,
    tokens: u64,
    offsets_at: u64,
    index_at: u64,
    key: [u8; 32],
}

fn align8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

fn read_u32(bytes: &[u8], pos: usize) -> Option<u32> {
    let b = bytes.get(pos..pos + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(bytes: &[u8], pos: usize) -> Option<u64> {
    let b = bytes.get(pos..pos + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

impl Header {
    fn new(width: TokenWidth, rows: u64, tokens: u64, key: [u8; 32]) -> Self {
        let offsets_at = align8(HEADER_LEN as u64 + tokens * width.bytes() as u64);
        let index_at = offsets_at + (2 * rows + 1) * 8;
        Self {
            width,
            rows,
            tokens,
            offsets_at,
            index_at,
            key,
        }
    }

    fn file_len(&self) -> u64 {
        self.index_at + self.rows * 16
    }

    fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(self.width.bytes() as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.rows.to_le_bytes());
        out[24..32].copy_from_slice(&self.tokens.to_le_bytes());
        out[32..40].copy_from_slice(&self.offsets_at.to_le_bytes());
        out[40..48].copy_from_slice(&self.index_at.to_le_bytes());
        out[48..80].copy_from_slice(&self.key);
        out
    }

    /// The header of `bytes`, checked against itself and the file's size;
    /// the error says why the file cannot be used.
    fn parse(bytes: &[u8]) -> std::result::Result<Header, String> {
        if bytes.len() < HEADER_LEN || &bytes[0..8] != MAGIC {
            return Err("not a token cache file".into());
        }
        let field = |pos| read_u64(bytes, pos).unwrap_or(u64::MAX);
        let version = read_u32(bytes, 8).unwrap_or(0);
        if version != CACHE_FORMAT_VERSION {
            return Err(format!(
                "format version {version}, this build reads {CACHE_FORMAT_VERSION}"
            ));
        }
        let width_bytes = read_u32(bytes, 12).unwrap_or(0);
        let width = TokenWidth::from_bytes(width_bytes)
            .ok_or_else(|| format!("token width {width_bytes} bytes"))?;
        let (rows, tokens) = (field(16), field(24));
        if rows > bytes.len() as u64 || tokens > bytes.len() as u64 {
            return Err("counts larger than the file".into());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[48..80]);
        let header = Header::new(width, rows, tokens, key);
        if header.offsets_at != field(32) || header.index_at != field(40) {
            return Err("section positions do not match the counts".into());
        }
        if header.file_len() != bytes.len() as u64 {
            return Err(format!(
                "{} bytes where the header promises {} (an interrupted copy?)",
                bytes.len(),
                header.file_len()
            ));
        }
        Ok(header)
    }
}

/// One split's cached ids, memory-mapped.
#[derive(Debug)]
pub struct SplitTokens {
    map: Mmap,
    header: Header,
}

impl SplitTokens {
    /// Maps `path` and checks that it is a complete cache of `rows` rows made
    /// with `key`; the error says why not.
    fn open(path: &Path, key: &[u8; 32], rows: u64) -> std::result::Result<Self, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: cache files are written once in a temporary folder and
        // never changed after it is renamed into place (a rebuild renames the
        // old folder away), so the mapping stays valid while we read it.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| e.to_string())?;
        let header = Header::parse(&map)?;
        if &header.key != key {
            return Err("made for another tokenizer, input format or dataset".into());
        }
        if header.rows != rows {
            return Err(format!("{} rows where the split has {rows}", header.rows));
        }
        let tokens = Self { map, header };
        tokens.check_sections()?;
        Ok(tokens)
    }

    /// Offsets that only grow and end at the token count, and an index of
    /// distinct ids pointing at real rows: after this no lookup can fall
    /// outside the file.
    fn check_sections(&self) -> std::result::Result<(), String> {
        let mut previous = 0;
        for i in 0..=2 * self.header.rows {
            let offset = self.offset(i).ok_or("offsets cut short")?;
            if offset < previous || offset > self.header.tokens {
                return Err(format!("offset {i} out of order"));
            }
            previous = offset;
        }
        if previous != self.header.tokens {
            return Err("offsets do not end at the token count".into());
        }
        let mut last_id = None;
        for i in 0..self.header.rows {
            let (id, row) = self.index_entry(i).ok_or("index cut short")?;
            if last_id.is_some_and(|last| id <= last) || row >= self.header.rows {
                return Err(format!("index entry {i} out of order"));
            }
            last_id = Some(id);
        }
        Ok(())
    }

    fn offset(&self, i: u64) -> Option<u64> {
        read_u64(&self.map, (self.header.offsets_at + 8 * i) as usize)
    }

    fn index_entry(&self, i: u64) -> Option<(u64, u64)> {
        let pos = (self.header.index_at + 16 * i) as usize;
        Some((read_u64(&self.map, pos)?, read_u64(&self.map, pos + 8)?))
    }

    fn ids(&self, from: u64, to: u64) -> Option<TokenIds<'_>> {
        let width = self.header.width.bytes();
        let start = HEADER_LEN + from as usize * width;
        let end = HEADER_LEN + to as usize * width;
        Some(TokenIds {
            bytes: self.map.get(start..end)?,
            width: self.header.width,
        })
    }

    /// Rows in the split.
    pub fn len(&self) -> u64 {
        self.header.rows
    }

    pub fn is_empty(&self) -> bool {
        self.header.rows == 0
    }

    /// Stored bytes per token id.
    pub fn width(&self) -> TokenWidth {
        self.header.width
    }

    /// The ids of row `row` (the index [`SplitReader::get`] takes).
    pub fn get(&self, row: u64) -> Option<CachedExample<'_>> {
        if row >= self.header.rows {
            return None;
        }
        let (a, b, c) = (
            self.offset(2 * row)?,
            self.offset(2 * row + 1)?,
            self.offset(2 * row + 2)?,
        );
        Some(CachedExample {
            source: self.ids(a, b)?,
            target: self.ids(b, c)?,
        })
    }

    /// The row of the example whose [`Example::id`] is `id`.
    ///
    /// [`Example::id`]: text2sql_data::store::Example::id
    pub fn row_of_id(&self, id: u64) -> Option<u64> {
        let (mut lo, mut hi) = (0, self.header.rows);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (found, row) = self.index_entry(mid)?;
            match found.cmp(&id) {
                std::cmp::Ordering::Equal => return Some(row),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// The ids of the example whose id is `id` (what the sampler yields).
    pub fn by_id(&self, id: u64) -> Option<CachedExample<'_>> {
        self.get(self.row_of_id(id)?)
    }
}

/// A processed dataset's examples as token ids, ready for batching.
#[derive(Debug)]
pub struct TokenCache {
    dir: PathBuf,
    key: String,
    train: SplitTokens,
    val: SplitTokens,
    origin: CacheOrigin,
}

fn split_file(dir: &Path, split: Split) -> PathBuf {
    dir.join(format!("{}.tokens", split.as_str()))
}

impl TokenCache {
    /// Maps the dataset's cache for this encoder and tokenizer, building it
    /// first when it is missing, from another version, corrupt or stale, or
    /// when `options.rebuild` asks for it. `tokenizer_files` are the files
    /// the encoder's tokenizer was loaded from (their bytes are part of the
    /// key). Progress and warnings go to `on_event`.
    pub fn open_or_build(
        dataset: &ProcessedDataset,
        encoder: &ExampleEncoder<'_>,
        tokenizer_files: &[PathBuf],
        options: &TokenCacheOptions,
        on_event: &mut dyn FnMut(CacheEvent<'_>),
    ) -> Result<TokenCache> {
        let inputs = CacheKeyInputs::new(tokenizer_files, encoder.format(), dataset.dir())?;
        let digest = inputs.digest()?;
        let key = hex::encode(&digest[..16]);
        let root = dataset.dir().join(TOKEN_CACHE_DIR);
        let dir = root.join(&key);
        let mut discard_existing = options.rebuild;
        if !options.rebuild && dir.exists() {
            match Self::open_dir(&dir, &key, &digest, dataset, CacheOrigin::Reused) {
                Ok(cache) => match cache.spot_check(dataset, encoder)? {
                    None => return Ok(cache),
                    Some(why) => {
                        on_event(CacheEvent::Warning(format!(
                            "token cache {} {why}; rebuilding it",
                            dir.display()
                        )));
                        discard_existing = true;
                    }
                },
                Err(why) => {
                    on_event(CacheEvent::Warning(format!(
                        "token cache {} cannot be used ({why}); rebuilding it",
                        dir.display()
                    )));
                    discard_existing = true;
                }
            }
        }

        let started = Instant::now();
        let staging = atomic::StagedDir::new(&dir)?;
        let pool = match options.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| {
                        TrainError::Dataset(format!("starting {n} encoding threads: {e}"))
                    })?,
            ),
            None => None,
        };
        on_event(CacheEvent::Building {
            dir: &dir,
            examples: dataset.split(Split::Train).len() + dataset.split(Split::Val).len(),
        });
        let built = build_into(
            staging.path(),
            dataset,
            encoder,
            &digest,
            pool.as_ref(),
            on_event,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let meta = CacheMeta {
            key: key.clone(),
            inputs,
            dataset_dir: dataset.dir().to_path_buf(),
            token_width_bytes: built.width.bytes() as u32,
            train: built.train,
            val: built.val,
            created_at_unix_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            build_seconds: seconds,
        };
        let meta_path = staging.path().join(META_FILE);
        let json = serde_json::to_vec_pretty(&meta).map_err(|source| TrainError::Json {
            path: meta_path.clone(),
            source,
        })?;
        std::fs::write(&meta_path, json).map_err(|e| TrainError::io(&meta_path, e))?;

        if discard_existing {
            discard(&dir, &root, on_event)?;
        }
        let examples = meta.train.examples + meta.val.examples;
        let origin = CacheOrigin::Built { examples, seconds };
        // Another builder may have got there first: its files (same key,
        // same content) are used and this build is deleted.
        staging.commit_unless_present()?;
        Self::open_dir(&dir, &key, &digest, dataset, origin).map_err(|why| {
            TrainError::Dataset(format!(
                "the token cache just built in {} cannot be read: {why}",
                dir.display()
            ))
        })
    }

    fn open_dir(
        dir: &Path,
        key: &str,
        digest: &[u8; 32],
        dataset: &ProcessedDataset,
        origin: CacheOrigin,
    ) -> std::result::Result<TokenCache, String> {
        let meta_path = dir.join(META_FILE);
        let meta: CacheMeta = std::fs::read(&meta_path)
            .map_err(|e| format!("{META_FILE}: {e}"))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{META_FILE}: {e}")))?;
        if meta.key != key {
            return Err(format!("{META_FILE} names key {}", meta.key));
        }
        let open = |split: Split| {
            let path = split_file(dir, split);
            SplitTokens::open(&path, digest, dataset.split(split).len())
                .map_err(|why| format!("{}: {why}", path.display()))
        };
        Ok(TokenCache {
            dir: dir.to_path_buf(),
            key: key.to_string(),
            train: open(Split::Train)?,
            val: open(Split::Val)?,
            origin,
        })
    }

    /// Re-encodes the first rows of each split: `Some(reason)` when the
    /// cache disagrees with what this build would encode.
    fn spot_check(
        &self,
        dataset: &ProcessedDataset,
        encoder: &ExampleEncoder<'_>,
    ) -> Result<Option<String>> {
        for split in [Split::Train, Split::Val] {
            let tokens = self.split(split);
            let reader = dataset.split(split);
            for row in 0..tokens.len().min(SPOT_CHECK_ROWS) {
                let example = reader.get(row)?;
                let fresh = encoder.encode(&example)?;
                let cached = tokens.get(row).map(|c| c.to_encoded());
                if cached.as_ref() != Some(&fresh) {
                    return Ok(Some(format!(
                        "holds other ids than this build encodes for {} row {row}",
                        split.as_str()
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key: hex of the first 16 bytes of the inputs' SHA-256.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn origin(&self) -> CacheOrigin {
        self.origin
    }

    pub fn split(&self, split: Split) -> &SplitTokens {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }
}

/// Moves an old cache folder aside and deletes it; readers that still map
/// its files keep them until they close.
fn discard(dir: &Path, root: &Path, on_event: &mut dyn FnMut(CacheEvent<'_>)) -> Result<()> {
    // `None`: another builder discarded it already.
    if let Some(aside) = atomic::move_aside(dir)? {
        if let Err(e) = aside.remove() {
            on_event(CacheEvent::Warning(format!(
                "could not delete the old token cache in {}: {e}",
                root.display()
            )));
        }
    }
    Ok(())
}

struct Built {
    width: TokenWidth,
    train: SplitCounts,
    val: SplitCounts,
}

fn build_into(
    dir: &Path,
    dataset: &ProcessedDataset,
    encoder: &ExampleEncoder<'_>,
    key: &[u8; 32],
    pool: Option<&rayon::ThreadPool>,
    on_event: &mut dyn FnMut(CacheEvent<'_>),
) -> Result<Built> {
    let width = TokenWidth::for_vocab(encoder.tokenizer().vocab_size());
    let total = dataset.split(Split::Train).len() + dataset.split(Split::Val).len();
    let mut progress = Progress {
        done: 0,
        total,
        on_event,
    };
    let mut write = |split| {
        let target = SplitTarget {
            dir,
            split,
            width,
            key,
            pool,
        };
        write_split(&target, dataset, encoder, &mut progress)
    };
    let train = write(Split::Train)?;
    let val = write(Split::Val)?;
    Ok(Built { width, train, val })
}

/// Where and how one split file is written.
struct SplitTarget<'a> {
    dir: &'a Path,
    split: Split,
    width: TokenWidth,
    key: &'a [u8; 32],
    /// The encoding threads; `None`: rayon's global pool.
    pool: Option<&'a rayon::ThreadPool>,
}

struct Progress<'a, 'b> {
    done: u64,
    total: u64,
    on_event: &'a mut dyn FnMut(CacheEvent<'b>),
}

/// Encodes one split, a few row groups at a time on every thread, and
/// writes it in row order, so the file does not depend on the thread count.
fn write_split(
    target: &SplitTarget<'_>,
    dataset: &ProcessedDataset,
    encoder: &ExampleEncoder<'_>,
    progress: &mut Progress<'_, '_>,
) -> Result<SplitCounts> {
    let SplitTarget {
        dir,
        split,
        width,
        key,
        pool,
    } = *target;
    let reader: &SplitReader = dataset.split(split);
    let path = split_file(dir, split);
    let io = |e| TrainError::io(&path, e);
    let mut out = BufWriter::new(File::create(&path).map_err(io)?);
    out.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
    let mut offsets: Vec<u64> = Vec::with_capacity(2 * reader.len() as usize + 1);
    offsets.push(0);
    let mut index: Vec<(u64, u64)> = Vec::with_capacity(reader.len() as usize);
    let mut counts = SplitCounts::default();
    let mut written = 0u64;
    let groups: Vec<usize> = (0..reader.row_group_count()).collect();
    let encode = |chunk: &[usize]| -> Result<Vec<Vec<(u64, Encoded)>>> {
        chunk
            .par_iter()
            .map(|&group| {
                let rows = reader.read_row_group(group)?;
                rows.par_iter()
                    .map(|example| Ok((example.id, encoder.encode(example)?)))
                    .collect::<Result<Vec<_>>>()
            })
            .collect()
    };
    let threads = pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
    for chunk in groups.chunks(threads.max(1) * 2) {
        let encoded = match pool {
            Some(pool) => pool.install(|| encode(chunk)),
            None => encode(chunk),
        }?;
        for (id, example) in encoded.into_iter().flatten() {
            index.push((id, counts.examples));
            for ids in [&example.source, &example.target] {
                write_ids(&mut out, ids, width).map_err(|e| match e {
                    WriteError::Io(e) => io(e),
                    WriteError::TooWide(token) => TrainError::Dataset(format!(
                        "example {id}: token id {token} does not fit the cache's {}-byte ids",
                        width.bytes()
                    )),
                })?;
                written += ids.len() as u64;
                offsets.push(written);
            }
            counts.examples += 1;
            counts.source_tokens += example.source.len() as u64;
            counts.target_tokens += example.target.len() as u64;
            counts.longest_source = counts.longest_source.max(example.source.len() as u64);
            counts.longest_target = counts.longest_target.max(example.target.len() as u64);
            progress.done += 1;
        }
        (progress.on_event)(CacheEvent::Encoded {
            done: progress.done,
            total: progress.total,
        });
    }
    if counts.examples != reader.len() {
        return Err(TrainError::Dataset(format!(
            "{}: read {} rows of the {} split where the manifest lists {}",
            dataset.dir().display(),
            counts.examples,
            split.as_str(),
            reader.len()
        )));
    }
    index.sort_unstable();
    if let Some(pair) = index.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(TrainError::Dataset(format!(
            "{}: the {} split holds example id {} twice (rows {} and {})",
            dataset.dir().display(),
            split.as_str(),
            pair[0].0,
            pair[0].1,
            pair[1].1
        )));
    }
    let header = Header::new(width, counts.examples, written, *key);
    let padding = header.offsets_at - (HEADER_LEN as u64 + written * width.bytes() as u64);
    out.write_all(&vec![0u8; padding as usize]).map_err(io)?;
    for offset in &offsets {
        out.write_all(&offset.to_le_bytes()).map_err(io)?;
    }
    for (id, row) in &index {
        out.write_all(&id.to_le_bytes()).map_err(io)?;
        out.write_all(&row.to_le_bytes()).map_err(io)?;
    }
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header.to_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(counts)
}

enum WriteError {
    Io(std::io::Error),
    TooWide(u32),
}

fn write_ids(out: &mut impl Write, ids: &[u32], width: TokenWidth) -> Result<(), WriteError> {
    for &id in ids {
        match width {
            TokenWidth::U16 => {
                let narrow = u16::try_from(id).map_err(|_| WriteError::TooWide(id))?;
                out.write_all(&narrow.to_le_bytes())
            }
            TokenWidth::U32 => out.write_all(&id.to_le_bytes()),
        }
        .map_err(WriteError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = Header::new(TokenWidth::U16, 3, 5, [7; 32]);
        let mut file = header.to_bytes().to_vec();
        file.resize(header.file_len() as usize, 0);
        assert_eq!(Header::parse(&file).unwrap(), header);

        let mut short = file.clone();
        short.pop();
        assert!(Header::parse(&short).unwrap_err().contains("bytes where"));
        let mut version = file.clone();
        version[8] = 99;
        assert!(Header::parse(&version).unwrap_err().contains("version 99"));
        let mut magic = file;
        magic[0] = b'x';
        assert!(Header::parse(&magic).is_err());
    }

    #[test]
    fn width_fits_the_vocabulary() {
        assert_eq!(TokenWidth::for_vocab(32_128), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab(65_536), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab(65_537), TokenWidth::U32);
        let mut out = Vec::new();
        assert!(matches!(
            write_ids(&mut out, &[70_000], TokenWidth::U16),
            Err(WriteError::TooWide(70_000))
        ));
        write_ids(&mut out, &[70_000, 1], TokenWidth::U32).unwrap_or_else(|_| panic!());
        let ids = TokenIds {
            bytes: &out,
            width: TokenWidth::U32,
        };
        assert_eq!(ids.to_vec(), vec![70_000, 1]);
    }
}
