//! Password sessions: every write needs a password frame (`0x23`) first.
//!
//! A correct password opens a session that lasts [`AuthConfig::session_timeout`] after the
//! last accepted write (or the login). A wrong password ends any open session; after
//! [`AuthConfig::max_attempts`] wrong passwords in a row every attempt, right or wrong, is
//! refused for [`AuthConfig::lockout`]. Time is always an argument.
//!
//! # Examples
//! ```
//! use bms_core::serial::auth::{Auth, AuthConfig, AuthError};
//! use bms_core::{Duration, Instant};
//! let mut auth = Auth::new(AuthConfig::new(b"12345678").unwrap());
//! let t0 = Instant::from_millis(0);
//! assert_eq!(auth.check(t0), Err(AuthError::NotAuthenticated));
//! auth.attempt(t0, b"12345678")?;
//! assert!(auth.check(t0 + Duration::from_secs(10)).is_ok());
//! # Ok::<(), AuthError>(())
//! ```

use core::fmt;

use heapless::Vec;

use crate::time::{Duration, Instant};

/// Longest password accepted.
pub const MAX_PASSWORD_LEN: usize = 16;

/// Why authentication failed or a write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AuthError {
    /// A configured password is empty or longer than [`MAX_PASSWORD_LEN`].
    InvalidPassword,
    /// The password does not match.
    WrongPassword,
    /// Too many wrong passwords; refused until the lockout ends.
    LockedOut,
    /// No session open (never logged in, timed out or ended by a wrong password).
    NotAuthenticated,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::InvalidPassword => "password must be 1..=16 bytes",
            AuthError::WrongPassword => "wrong password",
            AuthError::LockedOut => "locked out after too many wrong passwords",
            AuthError::NotAuthenticated => "not authenticated",
        })
    }
}

impl core::error::Error for AuthError {}

/// Password and timing of write sessions. `Debug` does not print the password.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    password: Vec<u8, MAX_PASSWORD_LEN>,
    /// A session ends this long after the login or the last accepted write.
    pub session_timeout: Duration,
    /// Wrong passwords in a row that start a lockout.
    pub max_attempts: u8,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("password", &"<redacted>")
            .field("session_timeout", &self.session_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("lockout", &self.lockout)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for AuthConfig {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "AuthConfig {{ password: <redacted>, session_timeout: {}, max_attempts: {}, lockout: {} }}",
            self.session_timeout,
            self.max_attempts,
            self.lockout
        )
    }
}

impl AuthConfig {
    /// Default session timeout: 5 minutes.
    pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_mins(5);
    /// Default attempts before a lockout: 5.
    pub const DEFAULT_MAX_ATTEMPTS: u8 = 5;
    /// Default lockout: 5 minutes.
    pub const DEFAULT_LOCKOUT: Duration = Duration::from_mins(5);

    /// A configuration with `password` and the default timings.
    ///
    /// # Errors
    /// [`AuthError::InvalidPassword`] for an empty password or one over 16 bytes.
    pub fn new(password: &[u8]) -> Result<Self, AuthError> {
        if password.is_empty() {
            return Err(AuthError::InvalidPassword);
        }
        Ok(AuthConfig {
            password: Vec::from_slice(password).map_err(|_| AuthError::InvalidPassword)?,
            session_timeout: Self::DEFAULT_SESSION_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            lockout: Self::DEFAULT_LOCKOUT,
        })
    }

    /// The configured password.
    pub fn password(&self) -> &[u8] {
        &self.password
    }
}

/// The password state machine of one link.
#[derive(Clone, Debug)]
pub struct Auth {
    cfg: AuthConfig,
    state: AuthState,
}

/// The state of [`Auth`] without its configuration, so that a [`SerialSession`] keeps the
/// password once, in its own configuration.
///
/// [`SerialSession`]: super::SerialSession
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuthState {
    // An end of `Instant::ZERO` stands for "none": `now < ZERO` never holds, so it reads
    // exactly as an absent end did (and saves the 8-byte option tag of each).
    /// The open session ends here.
    session_until: Instant,
    /// The lockout ends here.
    locked_until: Instant,
    failures: u8,
}

/// Compares without an early exit on the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

impl AuthState {
    /// No session open, no lockout.
    pub(crate) const NEW: AuthState = AuthState {
        session_until: Instant::ZERO,
        locked_until: Instant::ZERO,
        failures: 0,
    };

    pub(crate) fn is_locked(&self, now: Instant) -> bool {
        now < self.locked_until
    }

    pub(crate) fn attempt(
        &mut self,
        cfg: &AuthConfig,
        now: Instant,
        password: &[u8],
    ) -> Result<(), AuthError> {
        if self.is_locked(now) {
            return Err(AuthError::LockedOut);
        }
        self.locked_until = Instant::ZERO;
        if same(password, &cfg.password) {
            self.failures = 0;
            self.session_until = now + cfg.session_timeout;
            Ok(())
        } else {
            self.session_until = Instant::ZERO;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= cfg.max_attempts.max(1) {
                self.failures = 0;
                self.locked_until = now + cfg.lockout;
            }
            Err(AuthError::WrongPassword)
        }
    }

    pub(crate) fn is_authenticated(&self, now: Instant) -> bool {
        now < self.session_until
    }

    pub(crate) fn check(&self, now: Instant) -> Result<(), AuthError> {
        if self.is_authenticated(now) {
            Ok(())
        } else {
            Err(AuthError::NotAuthenticated)
        }
    }

    pub(crate) fn touch(&mut self, cfg: &AuthConfig, now: Instant) {
        if self.is_authenticated(now) {
            self.session_until = now + cfg.session_timeout;
        }
    }

    pub(crate) fn logout(&mut self) {
        self.session_until = Instant::ZERO;
    }
}

impl Auth {
    /// No session open.
    pub fn new(cfg: AuthConfig) -> Self {
        Auth {
            cfg,
            state: AuthState::NEW,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// `true` while locked out.
    pub fn is_locked(&self, now: Instant) -> bool {
        self.state.is_locked(now)
    }

    /// Tries a password.
    ///
    /// # Errors
    /// [`AuthError::LockedOut`] during a lockout (the password is not even compared),
    /// [`AuthError::WrongPassword`] for a mismatch (the session ends; the attempt counts).
    pub fn attempt(&mut self, now: Instant, password: &[u8]) -> Result<(), AuthError> {
        self.state.attempt(&self.cfg, now, password)
    }

    /// `true` while a session is open.
    pub fn is_authenticated(&self, now: Instant) -> bool {
        self.state.is_authenticated(now)
    }

    /// Checks that a write may proceed.
    ///
    /// # Errors
    /// [`AuthError::NotAuthenticated`] when no session is open.
    pub fn check(&self, now: Instant) -> Result<(), AuthError> {
        self.state.check(now)
    }

    /// Extends the open session after an accepted write.
    pub fn touch(&mut self, now: Instant) {
        self.state.touch(&self.cfg, now);
    }

    /// Ends the session.
    pub fn logout(&mut self) {
        self.state.logout();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn session_times_out_and_touch_extends_it() {
        let mut a = Auth::new(AuthConfig::new(b"pw").unwrap());
        a.attempt(at(0), b"pw").unwrap();
        let t = AuthConfig::DEFAULT_SESSION_TIMEOUT.as_millis() as u64;
        assert!(a.check(at(t - 1)).is_ok());
        a.touch(at(t - 1));
        assert!(a.check(at(2 * t - 2)).is_ok());
        assert_eq!(a.check(at(2 * t - 1)), Err(AuthError::NotAuthenticated));
    }

    #[test]
    fn lockout_refuses_even_the_right_password_until_it_ends() {
        let mut cfg = AuthConfig::new(b"secret").unwrap();
        cfg.max_attempts = 3;
        cfg.lockout = Duration::from_secs(60);
        let mut a = Auth::new(cfg);
        for _ in 0..3 {
            assert_eq!(a.attempt(at(1), b"guess"), Err(AuthError::WrongPassword));
        }
        assert_eq!(a.attempt(at(2), b"secret"), Err(AuthError::LockedOut));
        assert_eq!(a.attempt(at(60_000), b"secret"), Err(AuthError::LockedOut));
        assert!(a.attempt(at(60_001), b"secret").is_ok());
    }

    #[test]
    fn wrong_password_ends_session_and_prefix_is_wrong() {
        let mut a = Auth::new(AuthConfig::new(b"secret").unwrap());
        a.attempt(at(0), b"secret").unwrap();
        assert_eq!(a.attempt(at(1), b"secre"), Err(AuthError::WrongPassword));
        assert_eq!(a.check(at(1)), Err(AuthError::NotAuthenticated));
        assert_eq!(
            AuthConfig::new(b"").unwrap_err(),
            AuthError::InvalidPassword
        );
        assert!(AuthConfig::new(&[b'x'; 17]).is_err());
        let shown = format!("{:?}", AuthConfig::new(b"hunter22").unwrap());
        assert!(!shown.contains("hunter22"), "{shown}");
    }
}
