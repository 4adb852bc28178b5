//! The event log, the lifetime statistics and the settings in the MCU's flash.
//!
//! Every event the core queues becomes an [`EventRecord`] (`record_of`, stamped with the
//! step's telemetry), goes through the [`RateLimiter`] (a flapping fault is coalesced into
//! one record that counts the repeats) and is appended to the [`EventLog`] ring. The
//! [`Stats`] fold every step in and are stored in their own [`ParamStore`] when due
//! (hourly by default). The settings written over the serial protocol are stored in a
//! third [`ParamStore`] on every configuration change. All of it is blocking flash access after the control step; the
//! work per step is bounded by the core's event queue and the limiter's capacity.

use bms_core::event_log::{
    record_of, EventLog, EventRecord, LifetimeStats, ParamStore, Persist, RateLimiter, Region,
    Settings, Stats,
};
use bms_core::{Bms, Event, Instant};
use embedded_storage::nor_flash::NorFlash;

/// Encoded length of the settings at most.
const SETTINGS_LEN: usize = <Settings as Persist>::MAX_LEN;

/// Distinct events the limiter follows at once.
const LIMITER_SLOTS: usize = 16;

/// The log, the statistics and their flash.
pub struct Logbook<F> {
    flash: F,
    log_region: Region,
    log: Option<EventLog>,
    limiter: RateLimiter<LIMITER_SLOTS>,
    stats_store: Option<ParamStore<{ LifetimeStats::LEN }>>,
    stats: Stats,
    settings_store: Option<ParamStore<SETTINGS_LEN>>,
    sensor_causes: u8,
    /// Records the flash refused.
    pub rejected: u32,
}

impl<F: NorFlash> Logbook<F> {
    /// Opens the log in `log_region`, the statistics store in `stats_region` and the
    /// settings store in `settings_region` (each sector-aligned, at least 2 sectors). A log that cannot be opened is formatted;
    /// statistics that cannot be loaded restart from zero. A store whose region is unusable
    /// stays off (nothing is written) while the BMS keeps running.
    pub fn open(
        mut flash: F,
        log_region: Region,
        stats_region: Region,
        settings_region: Region,
        now: Instant,
    ) -> Self {
        let log = EventLog::open(&mut flash, log_region)
            .or_else(|_| EventLog::format(&mut flash, log_region))
            .ok();
        let mut stats_store = ParamStore::open(&mut flash, stats_region).ok();
        let loaded = stats_store
            .as_mut()
            .and_then(|s| s.load::<LifetimeStats, _>(&mut flash).ok())
            .unwrap_or(LifetimeStats::NEW);
        let settings_store = ParamStore::open(&mut flash, settings_region).ok();
        Logbook {
            flash,
            log_region,
            log,
            limiter: RateLimiter::new(RateLimiter::<LIMITER_SLOTS>::DEFAULT_WINDOW),
            stats_store,
            stats: Stats::new(loaded, now, Stats::DEFAULT_INTERVAL),
            settings_store,
            sensor_causes: 0,
            rejected: 0,
        }
    }

    /// After a control step: logs every queued event, writes the limiter's due summaries,
    /// folds the step into the statistics and stores them when due. Returns `true` when
    /// the configuration changed (the caller stores the settings).
    pub fn drain(&mut self, bms: &mut Bms) -> bool {
        let mut config_changed = false;
        while let Some(e) = bms.poll_event() {
            match e.event {
                Event::SensorCauses(c) => self.sensor_causes = c.bits(),
                Event::ConfigChanged => config_changed = true,
                _ => {}
            }
            if let Some(rec) = record_of(&e.event, bms.telemetry(), self.sensor_causes) {
                if let Some(rec) = self.limiter.offer(rec) {
                    self.append(rec);
                }
            }
        }
        let t = bms.telemetry();
        while let Some(rec) = self.limiter.poll(t.now) {
            self.append(rec);
        }
        self.stats.update(t);
        if self.stats.persist_due(t.now) {
            self.store_stats(t.now);
        }
        config_changed
    }

    /// The stored settings, if any.
    pub fn load_settings(&mut self) -> Option<Settings> {
        self.settings_store
            .as_mut()?
            .load::<Settings, _>(&mut self.flash)
            .ok()
    }

    /// Stores the settings as the new copy.
    pub fn store_settings(&mut self, settings: &Settings) {
        let stored = match self.settings_store.as_mut() {
            Some(store) => store.store(&mut self.flash, settings).is_ok(),
            None => false,
        };
        if !stored {
            self.rejected = self.rejected.saturating_add(1);
        }
    }

    /// Writes what the limiter holds and the statistics (before a restart or deep sleep).
    pub fn flush(&mut self, now: Instant) {
        while let Some(rec) = self.limiter.flush() {
            self.append(rec);
        }
        self.store_stats(now);
    }

    /// Erases the event log (the serial protocol's "clear log").
    pub fn clear_log(&mut self) {
        while self.limiter.flush().is_some() {}
        self.log = EventLog::format(&mut self.flash, self.log_region).ok();
    }

    /// Clears charge counters and stores the result at once.
    pub fn clear_counters(&mut self, now: Instant, charged: bool, discharged: bool) {
        let mut l = *self.stats.lifetime();
        if charged {
            l.charged = bms_core::MilliAmpHours::from_mah(0);
        }
        if discharged {
            l.discharged = bms_core::MilliAmpHours::from_mah(0);
        }
        self.stats = Stats::new(l, now, Stats::DEFAULT_INTERVAL);
        self.store_stats(now);
    }

    fn store_stats(&mut self, now: Instant) {
        let Some(store) = self.stats_store.as_mut() else {
            return;
        };
        if store.store(&mut self.flash, self.stats.lifetime()).is_ok() {
            self.stats.mark_persisted(now);
        } else {
            self.rejected = self.rejected.saturating_add(1);
        }
    }

    fn append(&mut self, rec: EventRecord) {
        let ok = match self.log.as_mut() {
            Some(log) => log.append(&mut self.flash, rec).is_ok(),
            None => false,
        };
        if !ok {
            self.rejected = self.rejected.saturating_add(1);
        }
    }
}
