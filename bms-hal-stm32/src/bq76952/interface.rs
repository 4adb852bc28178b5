//! Byte-level I2C access: plain and CRC-protected reads and writes.
//!
//! With CRC enabled (TRM chapter 11, I2C communications), every data byte is followed by a
//! CRC-8 (polynomial 0x07, initial value 0). The first CRC of a transfer also covers the
//! address and command bytes; each later CRC covers only its own data byte:
//! - write: `reg d0 crc(addr_w reg d0) d1 crc(d1) ...`
//! - read:  `d0 crc(addr_w reg addr_r d0) d1 crc(d1) ...`

use embedded_hal::i2c::I2c;

use super::types::Error;

/// Largest block the driver moves in one transfer: the 32-byte buffer plus the address.
pub(crate) const MAX_BLOCK: usize = 34;

const CRC_TABLE: [u8; 256] = crc_table();

const fn crc_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC-8, polynomial 0x07, initial value 0, no reflection, no final XOR.
pub fn crc8(data: &[u8]) -> u8 {
    data.iter()
        .fold(0u8, |crc, b| CRC_TABLE[usize::from(crc ^ b)])
}

/// Reads `out.len()` bytes starting at command `reg`.
pub(crate) fn read<I2C: I2c>(
    i2c: &mut I2C,
    address: u8,
    crc: bool,
    reg: u8,
    out: &mut [u8],
) -> Result<(), Error<I2C::Error>> {
    if out.len() > MAX_BLOCK {
        return Err(Error::InvalidInputData);
    }
    if !crc {
        return i2c.write_read(address, &[reg], out).map_err(Error::I2c);
    }
    let mut raw = [0u8; 2 * MAX_BLOCK];
    let raw = raw
        .get_mut(..2 * out.len())
        .ok_or(Error::InvalidInputData)?;
    i2c.write_read(address, &[reg], raw).map_err(Error::I2c)?;
    for (i, (pair, o)) in raw.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let (data, got) = (pair[0], pair[1]);
        let want = if i == 0 {
            crc8(&[address << 1, reg, (address << 1) | 1, data])
        } else {
            crc8(&[data])
        };
        if want != got {
            return Err(Error::Crc);
        }
        *o = data;
    }
    Ok(())
}

/// Writes `data` starting at command `reg`.
pub(crate) fn write<I2C: I2c>(
    i2c: &mut I2C,
    address: u8,
    crc: bool,
    reg: u8,
    data: &[u8],
) -> Result<(), Error<I2C::Error>> {
    if data.is_empty() || data.len() > MAX_BLOCK {
        return Err(Error::InvalidInputData);
    }
    let mut buf = [0u8; 1 + 2 * MAX_BLOCK];
    buf[0] = reg;
    let len = if crc {
        for (i, d) in data.iter().enumerate() {
            buf[1 + 2 * i] = *d;
            buf[2 + 2 * i] = if i == 0 {
                crc8(&[address << 1, reg, *d])
            } else {
                crc8(&[*d])
            };
        }
        1 + 2 * data.len()
    } else {
        buf[1..=data.len()].copy_from_slice(data);
        1 + data.len()
    };
    i2c.write(address, &buf[..len]).map_err(Error::I2c)
}

#[cfg(test)]
mod test {
    use super::crc8;

    #[test]
    fn crc8_check_value() {
        // The CRC-8 (poly 0x07, init 0) catalogue check value over "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
    }
}
