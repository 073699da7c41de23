//! A software model of the AMX tile registers and the instructions the tile
//! program uses, so the AMX blocking, A layout, B addressing and tile
//! configuration run (and are tested) on CPUs without AMX.
//!
//! Semantics follow the instruction definitions: a tile is `rows × colsb`
//! bytes loaded row by row at a byte stride; `tdpbf16ps` adds, per output
//! element, the products of bf16 pairs in f32; `tdpbusd` adds the products of
//! u8 (A) and s8 (B) quadruples in i32 (wrapping), `tdpbsud` those of s8 (A)
//! and u8 (B).

use super::amx::{Dot, TileConfig, TileOps};

/// Eight tiles of up to 16 rows × 64 bytes, and their configured shapes.
pub(crate) struct Emulated {
    tiles: [[u8; 1024]; 8],
    rows: [usize; 8],
    colsb: [usize; 8],
    configured: bool,
}

impl Emulated {
    pub(crate) fn new() -> Box<Self> {
        Box::new(Emulated {
            tiles: [[0; 1024]; 8],
            rows: [0; 8],
            colsb: [0; 8],
            configured: false,
        })
    }

    fn word(&self, t: usize, r: usize, w: usize) -> u32 {
        let o = r * 64 + w * 4;
        u32::from_le_bytes(self.tiles[t][o..o + 4].try_into().expect("4 bytes"))
    }

    fn set_word(&mut self, t: usize, r: usize, w: usize, v: u32) {
        let o = r * 64 + w * 4;
        self.tiles[t][o..o + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn check(&self, t: usize) {
        assert!(
            self.configured,
            "AMX emulation: tile {t} used before ldtilecfg"
        );
        assert!(self.rows[t] > 0, "AMX emulation: tile {t} not configured");
    }
}

impl TileOps for Box<Emulated> {
    unsafe fn configure(&mut self, cfg: &TileConfig) {
        let c = &cfg.0;
        assert_eq!(c[0], 1, "AMX emulation: palette must be 1");
        for t in 0..8 {
            let colsb = u16::from_le_bytes([c[16 + 2 * t], c[17 + 2 * t]]) as usize;
            let rows = c[48 + t] as usize;
            assert!(
                colsb <= 64 && rows <= 16,
                "AMX emulation: tile {t} is {rows} x {colsb} bytes"
            );
            self.colsb[t] = colsb;
            self.rows[t] = rows;
        }
        self.configured = true;
    }

    unsafe fn zero<const T: u8>(&mut self) {
        self.check(T as usize);
        self.tiles[T as usize] = [0; 1024];
    }

    unsafe fn load<const T: u8>(&mut self, p: *const u8, stride: usize) {
        let t = T as usize;
        self.check(t);
        for r in 0..self.rows[t] {
            // SAFETY: the caller guarantees `rows` rows of `colsb` bytes at `stride`.
            let src = unsafe { std::slice::from_raw_parts(p.add(r * stride), self.colsb[t]) };
            self.tiles[t][r * 64..][..src.len()].copy_from_slice(src);
        }
    }

    unsafe fn store<const T: u8>(&mut self, p: *mut u8, stride: usize) {
        let t = T as usize;
        self.check(t);
        for r in 0..self.rows[t] {
            // SAFETY: the caller guarantees `rows` writable rows of `colsb` bytes.
            let dst = unsafe { std::slice::from_raw_parts_mut(p.add(r * stride), self.colsb[t]) };
            dst.copy_from_slice(&self.tiles[t][r * 64..][..dst.len()]);
        }
    }

    unsafe fn dot<const C: u8, const A: u8, const B: u8>(&mut self, d: Dot) {
        let (c, a, b) = (C as usize, A as usize, B as usize);
        for t in [c, a, b] {
            self.check(t);
        }
        // Shapes: C is M × N words, A is M × K words, B is K × N words.
        let (m, n, k) = (self.rows[c], self.colsb[c] / 4, self.colsb[a] / 4);
        assert!(
            self.rows[a] == m && self.rows[b] == k && self.colsb[b] / 4 == n,
            "AMX emulation: tile shapes do not chain"
        );
        for i in 0..m {
            for j in 0..n {
                let acc = self.word(c, i, j);
                let v = match d {
                    Dot::Bf16 => {
                        let mut s = f32::from_bits(acc);
                        for q in 0..k {
                            let (x, y) = (self.word(a, i, q), self.word(b, q, j));
                            let lo = f32::from_bits(x << 16) * f32::from_bits(y << 16);
                            let hi =
                                f32::from_bits(x & 0xffff_0000) * f32::from_bits(y & 0xffff_0000);
                            s += lo + hi;
                        }
                        s.to_bits()
                    }
                    Dot::U8S8 | Dot::S8U8 | Dot::S8S8 => {
                        let mut s = acc as i32;
                        for q in 0..k {
                            let (x, y) = (self.word(a, i, q), self.word(b, q, j));
                            for l in 0..4 {
                                let (xa, yb) = ((x >> (8 * l)) as u8, (y >> (8 * l)) as u8);
                                let (u, v) = match d {
                                    Dot::U8S8 => (xa as i32, yb as i8 as i32),
                                    Dot::S8S8 => (xa as i8 as i32, yb as i8 as i32),
                                    _ => (xa as i8 as i32, yb as i32),
                                };
                                s = s.wrapping_add(u * v);
                            }
                        }
                        s as u32
                    }
                };
                self.set_word(c, i, j, v);
            }
        }
    }

    unsafe fn release(&mut self) {
        self.configured = false;
    }
}
