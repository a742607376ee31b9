//! The `tf.data` part: shuffle, decode and resize in parallel, cache, augment, batch and prefetch.
//!
//! Each epoch runs on its own producer thread, which hands batches to the consumer through a
//! bounded channel (the prefetch depth) and does the per-image work on a dedicated rayon pool. Every
//! random choice is a pure function of (seed, epoch, sample), so batches are identical whatever the
//! thread scheduling. Images that fail to decode are skipped, warned about once, and listed by
//! [`Pipeline::skipped`]; the batch is filled with the next images instead.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::decode::{DecodeLimits, decode_rgb_with_limits};
use crate::disk_cache::{Cached, DiskCache, fingerprint};
use crate::folder::Sample;
use crate::transform::{ColorJitter, Crop, Geometry, Size, crop_to_chw, resize_rgb};

/// Random crop and flip, or the deterministic centre crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Augment {
    /// Random crop position and random horizontal flip.
    Train,
    /// Centre crop, no flip.
    Eval,
}

/// Where decoded and resized images are kept between epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cache {
    /// Decode every image every epoch.
    None,
    /// Keep the resized RGB8 images in memory (a quarter of what `tf.data` keeps, which caches f32).
    Memory,
    /// Keep them in a file in this directory, reused by later pipelines over the same files.
    Disk(PathBuf),
}

/// Everything that shapes the batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Size of the images in a batch (the crop).
    pub image_size: Size,
    /// Size images are resized to before cropping.
    pub resize_size: Size,
    pub batch_size: usize,
    /// Reshuffle the samples every epoch; otherwise keep the given order.
    pub shuffle: bool,
    pub seed: u64,
    pub augment: Augment,
    /// With `Augment::Train`: brightness, contrast and saturation each scaled by a random factor
    /// in [1 - p/100, 1 + p/100] (`ColorJitter`); 0, the default, leaves colours alone.
    pub color_jitter_percent: u8,
    /// Drop the last batch of an epoch when it is not full.
    pub drop_remainder: bool,
    pub cache: Cache,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    /// Decoding threads; 0 means one per core.
    pub workers: usize,
    pub limits: DecodeLimits,
}

impl Default for PipelineConfig {
    /// The notebook's training input: 128 crops of 144 resizes, batches of 32, shuffled, augmented,
    /// cached in memory.
    fn default() -> Self {
        let geometry = Geometry::default();
        PipelineConfig {
            image_size: geometry.image_size,
            resize_size: geometry.resize_size,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            augment: Augment::Train,
            color_jitter_percent: 0,
            drop_remainder: false,
            cache: Cache::Memory,
            prefetch: 4,
            workers: 0,
            limits: DecodeLimits::default(),
        }
    }
}

impl PipelineConfig {
    /// Training input: shuffled, augmented, cached in memory.
    pub fn train() -> Self {
        PipelineConfig::default()
    }

    /// Evaluation input: given order, centre crops, no cache (each image is seen once).
    pub fn eval() -> Self {
        PipelineConfig {
            shuffle: false,
            augment: Augment::Eval,
            cache: Cache::None,
            ..PipelineConfig::default()
        }
    }

    pub fn geometry(&self) -> Geometry {
        Geometry {
            image_size: self.image_size,
            resize_size: self.resize_size,
        }
    }

    /// The images of the largest batch over `samples` images: no more than there are, so a batch
    /// size meant for a large dataset does not size the buffers of a small one.
    fn batch_images(&self, samples: usize) -> usize {
        self.batch_size.min(samples.max(1))
    }

    /// Checks that a pipeline over `samples` images can run with this configuration, before any
    /// work is done (what [`Pipeline::new`] checks, for a caller that wants to refuse early).
    pub fn check(&self, samples: usize) -> Result<(), PipelineError> {
        if !(1..=gc_core::MAX_BATCH).contains(&self.batch_size) {
            return Err(PipelineError::BatchSize(self.batch_size));
        }
        if self.color_jitter_percent > 100 {
            return Err(PipelineError::ColorJitter(self.color_jitter_percent));
        }
        let geometry = self.geometry();
        if !geometry.is_valid() {
            return Err(PipelineError::InvalidGeometry {
                image: self.image_size,
                resize: self.resize_size,
            });
        }
        // Several batches are in flight (prefetch), and the model's activations are many times
        // larger: past this, the allocation aborted the process instead of failing.
        let images = self.batch_images(samples);
        let bytes = images
            .saturating_mul(geometry.chw_len())
            .saturating_mul(size_of::<f32>());
        if bytes > MAX_BATCH_BYTES {
            return Err(PipelineError::BatchTooLarge {
                images,
                image: self.image_size,
                bytes,
            });
        }
        Ok(())
    }
}

/// The most memory the images of one batch may take.
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// A configuration the pipeline cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// `batch_size` is zero or over `gc_core::MAX_BATCH`.
    #[error("batch size {0} must be in 1..={max}", max = gc_core::MAX_BATCH)]
    BatchSize(usize),
    /// The crop does not fit in the resized image, or a side is zero.
    #[error("image size {}x{} does not fit in resize size {}x{}", image.width, image.height, resize.width, resize.height)]
    InvalidGeometry { image: Size, resize: Size },
    /// One batch of images would take more than [`MAX_BATCH_BYTES`].
    #[error(
        "a batch of {images} images of {}x{} would take {:.1} GiB, more than the {} GiB allowed: \
         use smaller batches or images",
        image.width,
        image.height,
        *bytes as f64 / (1u64 << 30) as f64,
        MAX_BATCH_BYTES >> 30
    )]
    BatchTooLarge {
        images: usize,
        image: Size,
        bytes: usize,
    },
    /// A label does not fit the batch label type.
    #[error("{}: label {label} is too large", path.display())]
    LabelTooLarge { path: PathBuf, label: usize },
    /// A colour jitter above 100% (a factor below zero).
    #[error("colour jitter {0}% is above 100%")]
    ColorJitter(u8),
    /// The worker thread pool could not be started.
    #[error("cannot start {workers} decoding threads: {reason}")]
    ThreadPool { workers: usize, reason: String },
    /// The disk cache directory cannot be used.
    #[error("{}: cannot use as a cache directory: {source}", path.display())]
    DiskCache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An image the pipeline skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Index in the pipeline's sample list.
    pub index: usize,
    pub path: PathBuf,
    pub reason: String,
}

/// One batch: `images` holds `shape = [n, 3, height, width]` floats in [0, 1], image after image,
/// each channel plane after plane (NCHW).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Index of each image in the pipeline's sample list.
    pub indices: Vec<usize>,
    pub shape: [usize; 4],
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The `i`-th image, `[3, height, width]`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.shape[1] * self.shape[2] * self.shape[3];
        &self.images[i * n..(i + 1) * n]
    }
}

/// The input pipeline over a fixed list of samples; `epoch(i)` streams the batches of epoch `i`.
pub struct Pipeline {
    shared: Arc<Shared>,
}

struct Shared {
    samples: Vec<Sample>,
    config: PipelineConfig,
    geometry: Geometry,
    pool: rayon::ThreadPool,
    memory: Option<Vec<OnceLock<Box<[u8]>>>>,
    disk: Option<DiskCache>,
    failed: Vec<AtomicBool>,
    skipped: Mutex<Vec<Skipped>>,
}

/// A sample index and its resized pixels, `None` when it could not be decoded.
type Loaded<'a> = (usize, Option<Cow<'a, [u8]>>);

/// Separates the random streams drawn from one seed.
const SHUFFLE_STREAM: u64 = 1;
const AUGMENT_STREAM: u64 = 2;
/// Its own stream, so that turning colour jitter on leaves every crop and flip as it was.
const JITTER_STREAM: u64 = 3;

/// A generator that depends only on its inputs: the seed is the four words side by side, so
/// different (seed, epoch, sample) never share a stream.
fn rng_for(seed: u64, epoch: u64, sample: u64, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([seed, epoch, sample, stream]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// Names what the cached pixels depend on besides the files and the size, for the disk cache key.
const RECIPE: &str = "zune-jpeg strict + image 0.25, exif orientation, rgb8, fast_image_resize bilinear (interpolation up to 2x shrink)";

impl Pipeline {
    pub fn new(samples: Vec<Sample>, config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        config.check(samples.len())?;
        let geometry = config.geometry();
        if let Some(s) = samples.iter().find(|s| u32::try_from(s.label).is_err()) {
            return Err(PipelineError::LabelTooLarge {
                path: s.path.clone(),
                label: s.label,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers)
            .thread_name(|i| format!("gc-pipeline-{i}"))
            .build()
            .map_err(|e| PipelineError::ThreadPool {
                workers: config.workers,
                reason: e.to_string(),
            })?;
        let memory = matches!(config.cache, Cache::Memory)
            .then(|| (0..samples.len()).map(|_| OnceLock::new()).collect());
        let disk = match &config.cache {
            Cache::Disk(dir) => {
                let fp = fingerprint(&samples, config.resize_size, RECIPE);
                Some(
                    DiskCache::open(dir, fp, samples.len(), config.resize_size).map_err(
                        |source| PipelineError::DiskCache {
                            path: dir.clone(),
                            source,
                        },
                    )?,
                )
            }
            _ => None,
        };
        let failed = (0..samples.len()).map(|_| AtomicBool::new(false)).collect();
        Ok(Pipeline {
            shared: Arc::new(Shared {
                samples,
                config,
                geometry,
                pool,
                memory,
                disk,
                failed,
                skipped: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.shared.config
    }

    pub fn samples(&self) -> &[Sample] {
        &self.shared.samples
    }

    /// Number of samples, skipped ones included.
    pub fn len(&self) -> usize {
        self.shared.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.samples.is_empty()
    }

    /// Batches in an epoch, the images skipped so far left out: exact after [`Pipeline::load_all`]
    /// or a first epoch, and counting every image before.
    pub fn batches_per_epoch(&self) -> usize {
        let skipped = self
            .shared
            .failed
            .iter()
            .filter(|f| f.load(Ordering::Relaxed))
            .count();
        let (n, b) = (self.len() - skipped, self.shared.config.batch_size);
        if self.shared.config.drop_remainder {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The order in which epoch `epoch` visits the samples (indices into the sample list).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        self.shared.order(epoch)
    }

    /// Decodes every image once, in parallel, so that those that cannot be used are known (and
    /// skipped) before the first epoch: a learning-rate schedule is sized by the batches an epoch
    /// will really have. With a cache this is the first epoch's decoding done early; without
    /// one it is an extra pass. Returns the number of usable images.
    pub fn load_all(&self) -> usize {
        let shared = &self.shared;
        let usable = shared.pool.install(|| {
            (0..shared.samples.len())
                .into_par_iter()
                .filter(|&i| !shared.failed[i].load(Ordering::Relaxed) && shared.load(i).is_some())
                .count()
        });
        if let Some(disk) = &shared.disk {
            disk.finish_if_complete();
        }
        usable
    }

    /// The images skipped so far, in the order they were found.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.shared
            .skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The disk cache file, when the configuration asks for one.
    pub fn disk_cache_path(&self) -> Option<&Path> {
        self.shared.disk.as_ref().map(|d| d.path())
    }

    /// Whether a complete disk cache file is being read (built by an earlier epoch or pipeline).
    pub fn disk_cache_ready(&self) -> bool {
        self.shared.disk.as_ref().is_some_and(|d| d.is_ready())
    }

    /// Streams the batches of epoch `epoch`. Work starts at once, in the background; dropping the
    /// iterator stops it and waits for the batch in progress.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let (tx, rx) = crossbeam_channel::bounded(self.shared.config.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&self.shared);
        let stop_flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(format!("gc-pipeline-epoch-{epoch}"))
            .spawn(move || shared.produce(epoch, &tx, &stop_flag));
        match handle {
            Ok(handle) => Epoch {
                rx: Some(rx),
                stop,
                handle: Some(handle),
            },
            Err(e) => {
                // Without a producer thread, run nothing rather than panic: the epoch is empty and
                // says why.
                tracing::error!(error = %e, "cannot start the pipeline thread");
                Epoch {
                    rx: None,
                    stop,
                    handle: None,
                }
            }
        }
    }
}

impl Shared {
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut rng_for(self.config.seed, epoch, 0, SHUFFLE_STREAM));
        }
        order
    }

    fn produce(&self, epoch: u64, tx: &Sender<Batch>, stop: &AtomicBool) {
        let order = self.order(epoch);
        // A full batch is `batch_size` images (with `drop_remainder`, fewer images make none);
        // the buffers are sized by the images there are.
        let batch_size = self.config.batch_size;
        let capacity = self.config.batch_images(self.samples.len());
        let mut next = 0;
        let mut ready: Vec<(usize, Cow<'_, [u8]>)> = Vec::with_capacity(capacity);
        let mut candidates = Vec::with_capacity(capacity);
        // The next batch's buffer is zeroed by one worker while the other works: zeroing 6 MB on
        // this thread, between two rounds of pool work, left the workers idle for a tenth of a
        // cold epoch. It is zeroed beside the decoding when there is decoding to hide it behind,
        // beside the previous batch's crops when everything came from the memory cache.
        let mut buffer: Option<Vec<f32>> = None;
        while next < order.len() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // Take as many not-yet-failed samples as the batch lacks; failures are replaced by the
            // samples that follow them, so batches stay full.
            candidates.clear();
            while candidates.len() < batch_size - ready.len() && next < order.len() {
                if !self.failed[order[next]].load(Ordering::Relaxed) {
                    candidates.push(order[next]);
                }
                next += 1;
            }
            let (loaded, zeroed): (Vec<Loaded<'_>>, _) = self.pool.install(|| {
                rayon::join(
                    || candidates.par_iter().map(|&i| (i, self.load(i))).collect(),
                    || buffer.is_none().then(|| self.zeroed_batch()),
                )
            });
            buffer = buffer.or(zeroed);
            let from_memory = loaded
                .iter()
                .all(|(_, px)| matches!(px, Some(Cow::Borrowed(_))));
            ready.extend(loaded.into_iter().filter_map(|(i, px)| Some((i, px?))));
            if ready.len() == batch_size {
                let (batch, spare) = self.assemble(epoch, &ready, buffer.take(), from_memory);
                buffer = spare;
                if tx.send(batch).is_err() {
                    return;
                }
                ready.clear();
            }
        }
        if !ready.is_empty() && !self.config.drop_remainder {
            let (batch, _) = self.assemble(epoch, &ready, buffer.take(), false);
            if tx.send(batch).is_err() {
                return;
            }
        }
        if let Some(disk) = &self.disk {
            disk.finish_if_complete();
        }
    }

    /// The resized pixels of sample `i`, from a cache or decoded; `None` if it cannot be decoded.
    fn load(&self, i: usize) -> Option<Cow<'_, [u8]>> {
        if let Some(pixels) = self.memory.as_ref().and_then(|m| m[i].get()) {
            return Some(Cow::Borrowed(pixels));
        }
        if let Some(disk) = &self.disk {
            match disk.get(i) {
                Some(Cached::Pixels(pixels)) => return Some(Cow::Owned(pixels)),
                Some(Cached::Failed(reason)) => {
                    self.skip(i, reason);
                    return None;
                }
                None => {}
            }
        }
        let result = self.decode_resized(&self.samples[i].path);
        if let Some(disk) = &self.disk {
            disk.put(i, result.as_deref().map_err(String::as_str));
        }
        match result {
            Ok(pixels) => match &self.memory {
                Some(memory) => Some(Cow::Borrowed(
                    memory[i].get_or_init(|| pixels.into_boxed_slice()),
                )),
                None => Some(Cow::Owned(pixels)),
            },
            Err(reason) => {
                self.skip(i, reason);
                None
            }
        }
    }

    fn decode_resized(&self, path: &Path) -> Result<Vec<u8>, String> {
        let image = decode_rgb_with_limits(path, &self.config.limits).map_err(|e| e.to_string())?;
        let (width, height) = image.dimensions();
        resize_rgb(image.as_raw(), width, height, self.config.resize_size)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn skip(&self, i: usize, reason: String) {
        if self.failed[i].swap(true, Ordering::AcqRel) {
            return;
        }
        let path = self.samples[i].path.clone();
        tracing::warn!(path = %path.display(), %reason, "skipping an image that cannot be used");
        self.skipped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Skipped {
                index: i,
                path,
                reason,
            });
    }

    /// A full batch of zeros (a memset: faster than zeroing it in parallel element by element).
    fn zeroed_batch(&self) -> Vec<f32> {
        vec![0f32; self.config.batch_images(self.samples.len()) * self.geometry.chw_len()]
    }

    /// Crops (and flips) every ready image into one NCHW batch, in parallel, in `buffer` if given
    /// (a zeroed full batch); with `zero_next`, also returns the next batch's buffer, zeroed
    /// meanwhile.
    fn assemble(
        &self,
        epoch: u64,
        ready: &[(usize, Cow<'_, [u8]>)],
        buffer: Option<Vec<f32>>,
        zero_next: bool,
    ) -> (Batch, Option<Vec<f32>>) {
        let g = &self.geometry;
        let per_image = g.chw_len();
        let mut images = buffer.unwrap_or_else(|| self.zeroed_batch());
        // Only the last batch of an epoch is shorter; its spare capacity is not worth a copy.
        images.truncate(ready.len() * per_image);
        let crop_all = |images: &mut Vec<f32>| {
            images
                .par_chunks_mut(per_image)
                .zip(ready.par_iter())
                .for_each(|(out, (i, pixels))| {
                    let crop = match self.config.augment {
                        Augment::Train => Crop::random(
                            g,
                            &mut rng_for(self.config.seed, epoch, *i as u64, AUGMENT_STREAM),
                        ),
                        Augment::Eval => Crop::center(g),
                    };
                    crop_to_chw(pixels, g, crop, out);
                    let jitter = self.config.color_jitter_percent;
                    if self.config.augment == Augment::Train && jitter > 0 {
                        ColorJitter::random(
                            f32::from(jitter) / 100.0,
                            &mut rng_for(self.config.seed, epoch, *i as u64, JITTER_STREAM),
                        )
                        .apply(out);
                    }
                })
        };
        let ((), spare) = self.pool.install(|| {
            rayon::join(
                || crop_all(&mut images),
                || zero_next.then(|| self.zeroed_batch()),
            )
        });
        let batch = Batch {
            images,
            // Checked to fit in `Pipeline::new`.
            labels: ready
                .iter()
                .map(|(i, _)| self.samples[*i].label as u32)
                .collect(),
            indices: ready.iter().map(|(i, _)| *i).collect(),
            shape: [
                ready.len(),
                3,
                g.image_size.height as usize,
                g.image_size.width as usize,
            ],
        };
        (batch, spare)
    }
}

/// The batches of one epoch, produced in the background.
pub struct Epoch {
    rx: Option<Receiver<Batch>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Epoch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver makes a producer blocked on a full channel return at once.
        self.rx = None;
        if let Some(handle) = self.handle.take() {
            // A panic in the producer has already been reported by the panic hook; nothing to add.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_streams_differ_by_every_input() {
        use rand::Rng;
        let draw = |s, e, i, k| rng_for(s, e, i, k).random::<u64>();
        let base = draw(1, 2, 3, 4);
        assert_eq!(base, draw(1, 2, 3, 4));
        for other in [
            draw(0, 2, 3, 4),
            draw(1, 0, 3, 4),
            draw(1, 2, 0, 4),
            draw(1, 2, 3, 0),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let zero = PipelineConfig {
            batch_size: 0,
            ..PipelineConfig::default()
        };
        assert!(matches!(
            Pipeline::new(vec![], zero),
            Err(PipelineError::BatchSize(0))
        ));
        // A batch of 10^12 was a Vec::with_capacity of that many: an abort, not an error.
        let huge = PipelineConfig {
            batch_size: 1 << 40,
            ..PipelineConfig::default()
        };
        assert!(matches!(
            Pipeline::new(vec![], huge),
            Err(PipelineError::BatchSize(n)) if n == 1 << 40
        ));
        // Allowed: 4096 images of 1024x1024 (48 GiB a batch, an abort when it was allocated),
        // but refused over enough images to fill such a batch.
        let huge_images = PipelineConfig {
            image_size: Size::square(1024),
            resize_size: Size::square(1152),
            batch_size: 4096,
            ..PipelineConfig::default()
        };
        let many: Vec<Sample> = (0..5000)
            .map(|i| Sample {
                path: PathBuf::from(format!("{i}.jpg")),
                label: 0,
            })
            .collect();
        let err = Pipeline::new(many, huge_images.clone()).err().unwrap();
        assert!(
            matches!(err, PipelineError::BatchTooLarge { images: 4096, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("48.0 GiB"), "{err}");
        assert!(huge_images.check(4).is_ok());
        let big = PipelineConfig {
            image_size: Size::square(200),
            ..PipelineConfig::default()
        };
        assert!(matches!(
            Pipeline::new(vec![], big),
            Err(PipelineError::InvalidGeometry { .. })
        ));
    }

    #[test]
    fn empty_sample_list_gives_an_empty_epoch() {
        let p = Pipeline::new(vec![], PipelineConfig::default()).unwrap();
        assert_eq!(p.epoch(0).count(), 0);
        assert_eq!(p.batches_per_epoch(), 0);
    }
}
