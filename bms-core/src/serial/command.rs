//! Control "buttons" (function `0x51`, the legacy writes to 247..255) and the [`Command`]s
//! they produce for the BMS.

enum_with_unknown! {
    /// Control register addressed by a `0x51` frame (ESPHome `switch/` and `button/`).
    pub enum ControlCode(u16) {
        /// Discharge MOSFET off.
        DischargeOff = 0x01,
        /// Discharge MOSFET on.
        DischargeOn = 0x03,
        /// Charge MOSFET off.
        ChargeOff = 0x04,
        /// Charge MOSFET on.
        ChargeOn = 0x06,
        /// Apply/save settings (the vendor app sends it after every setting write).
        Apply = 0x07,
        /// Set the current-sensor zero.
        CurrentZero = 0x08,
        /// Restart the BMS.
        Restart = 0x09,
        /// Shut the BMS down.
        Shutdown = 0x0B,
        /// Factory reset.
        FactoryReset = 0x0C,
        /// Balancer on.
        BalancerOn = 0x0D,
        /// Balancer off.
        BalancerOff = 0x0E,
        /// Clear the system (event) log.
        ClearLog = 0x0F,
        /// Bluetooth re-initialisation (not supported here).
        BluetoothInit = 0x10,
        /// Bluetooth off (not supported here).
        BluetoothOff = 0x1C,
        /// Bluetooth on (not supported here).
        BluetoothOn = 0x1D,
        /// Buzzer on (not supported here).
        BuzzerOn = 0x1E,
        /// Buzzer off (not supported here).
        BuzzerOff = 0x1F,
        /// Clear the discharged-Ah counter.
        ClearDischargedAh = 0x20,
        /// Clear the charged-Ah counter.
        ClearChargedAh = 0x21,
        /// Clear the discharge-time counter.
        ClearDischargeTime = 0x22,
        /// Clear the charge-time counter.
        ClearChargeTime = 0x23,
        /// Clear the running-time counter.
        ClearRunningTime = 0x24,
        /// Clear the protection-time counter.
        ClearProtectTime = 0x25,
        /// Hardware reset (not supported here).
        HardwareReset = 0x2A,
        /// Save customer data (not supported here).
        SaveCustomerData = 0x2C,
    }
}

/// A lifetime counter a client may clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Counter {
    /// Total discharged charge.
    DischargedAh,
    /// Total charged charge.
    ChargedAh,
    /// Total discharge time.
    DischargeTime,
    /// Total charge time.
    ChargeTime,
    /// Running time.
    RunningTime,
    /// Time spent in protection.
    ProtectTime,
}

/// What an authenticated client asked the BMS to do, drained with
/// [`SerialSession::poll_command`](super::SerialSession::poll_command).
///
/// The session only reports the request; the BMS decides (a switch-on request never
/// overrides an active protection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Command {
    /// Allow (`true`) or forbid (`false`) the charge MOSFET.
    SetChargeFet(bool),
    /// Allow or forbid the discharge MOSFET.
    SetDischargeFet(bool),
    /// Enable or disable balancing.
    SetBalancer(bool),
    /// Restart.
    Restart,
    /// Shut down (deep sleep until a manual wake).
    Shutdown,
    /// Restore the factory configuration.
    FactoryReset,
    /// Take the present current reading as zero.
    ZeroCurrent,
    /// Commit settings written since the last apply.
    ApplySettings,
    /// Clear the event log.
    ClearEventLog,
    /// Clear one lifetime counter.
    ClearCounter(Counter),
}

impl ControlCode {
    /// The command this control code asks for; `None` for codes this firmware does not
    /// support (answered with [`ErrorCode::Unsupported`](super::ErrorCode::Unsupported)).
    pub fn command(self) -> Option<Command> {
        Some(match self {
            ControlCode::DischargeOff => Command::SetDischargeFet(false),
            ControlCode::DischargeOn => Command::SetDischargeFet(true),
            ControlCode::ChargeOff => Command::SetChargeFet(false),
            ControlCode::ChargeOn => Command::SetChargeFet(true),
            ControlCode::Apply => Command::ApplySettings,
            ControlCode::CurrentZero => Command::ZeroCurrent,
            ControlCode::Restart => Command::Restart,
            ControlCode::Shutdown => Command::Shutdown,
            ControlCode::FactoryReset => Command::FactoryReset,
            ControlCode::BalancerOn => Command::SetBalancer(true),
            ControlCode::BalancerOff => Command::SetBalancer(false),
            ControlCode::ClearLog => Command::ClearEventLog,
            ControlCode::ClearDischargedAh => Command::ClearCounter(Counter::DischargedAh),
            ControlCode::ClearChargedAh => Command::ClearCounter(Counter::ChargedAh),
            ControlCode::ClearDischargeTime => Command::ClearCounter(Counter::DischargeTime),
            ControlCode::ClearChargeTime => Command::ClearCounter(Counter::ChargeTime),
            ControlCode::ClearRunningTime => Command::ClearCounter(Counter::RunningTime),
            ControlCode::ClearProtectTime => Command::ClearCounter(Counter::ProtectTime),
            _ => return None,
        })
    }
}

/// The supported control codes and their commands, for [`command_of`].
const CONTROL_COMMANDS: [(u16, Command); 18] = [
    (0x01, Command::SetDischargeFet(false)),
    (0x03, Command::SetDischargeFet(true)),
    (0x04, Command::SetChargeFet(false)),
    (0x06, Command::SetChargeFet(true)),
    (0x07, Command::ApplySettings),
    (0x08, Command::ZeroCurrent),
    (0x09, Command::Restart),
    (0x0B, Command::Shutdown),
    (0x0C, Command::FactoryReset),
    (0x0D, Command::SetBalancer(true)),
    (0x0E, Command::SetBalancer(false)),
    (0x0F, Command::ClearEventLog),
    (0x20, Command::ClearCounter(Counter::DischargedAh)),
    (0x21, Command::ClearCounter(Counter::ChargedAh)),
    (0x22, Command::ClearCounter(Counter::DischargeTime)),
    (0x23, Command::ClearCounter(Counter::ChargeTime)),
    (0x24, Command::ClearCounter(Counter::RunningTime)),
    (0x25, Command::ClearCounter(Counter::ProtectTime)),
];

/// `ControlCode::from(code).command()` of a raw control code.
// A table walk on the receive path: no conversion to `ControlCode` and no match per code.
pub(crate) fn command_of(code: u16) -> Option<Command> {
    CONTROL_COMMANDS
        .iter()
        .find(|e| e.0 == code)
        .map(|&(_, cmd)| cmd)
}

/// The command of a legacy write to a control address (247..=255), `None` for other
/// addresses and for the LiFePO4 preset (251, not supported).
pub fn legacy_command(address: u8, value: u16) -> Option<Command> {
    let on = value != 0;
    Some(match address {
        247 => Command::Shutdown,
        248 => Command::ZeroCurrent,
        249 => Command::SetDischargeFet(on),
        250 => Command::SetChargeFet(on),
        252 => Command::SetBalancer(on),
        253 => Command::FactoryReset,
        254 => Command::Restart,
        255 => Command::ApplySettings,
        _ => return None,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_table_gives_the_command_of_every_code() {
        for code in 0..=u16::MAX {
            assert_eq!(
                command_of(code),
                ControlCode::from(code).command(),
                "{code:#x}"
            );
        }
    }
}
