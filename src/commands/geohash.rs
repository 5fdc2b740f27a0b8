//! Geohash arithmetic for the geo commands: Redis's 52-bit interleaved encoding of
//! (longitude, latitude) that is stored as a sorted-set score, the cells around a
//! point that cover a search area, and great-circle distances.
//!
//! The steps, the order of operations and the constants are Redis's (geohash.c,
//! geohash_helper.c), so a point gets the same score here as there (ZSCORE and
//! ZRANGE agree) and a search visits the same cells and finds the same members.

/// Bits per coordinate of a stored score: 26 + 26 = 52, exact in a double.
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;

/// Earth's quadratic mean radius for WGS-84, in metres (Redis's value).
const EARTH_RADIUS_METERS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// Redis's ranges: Web Mercator's latitude limits.
pub const LONG_RANGE: Range = Range { min: LONG_MIN, max: LONG_MAX };
pub const LAT_RANGE: Range = Range { min: LAT_MIN, max: LAT_MAX };

/// A cell: `step` bits per coordinate, interleaved (latitude in the even bits).
/// `step == 0` marks a cell dropped from a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub bits: u64,
    pub step: u8,
}

impl Cell {
    const NONE: Cell = Cell { bits: 0, step: 0 };

    pub fn is_none(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell's bits moved to the top of a 52-bit score.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - 2 * u32::from(self.step))
    }

    /// Scores `[min, max)` of every point inside this cell.
    pub fn score_range(&self) -> (f64, f64) {
        let next = Cell { bits: self.bits + 1, step: self.step };
        (self.align52() as f64, next.align52() as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

fn deg_rad(angle: f64) -> f64 {
    angle * D_R
}

fn rad_deg(angle: f64) -> f64 {
    angle / D_R
}

fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// The cell of `step` bits holding (longitude, latitude) within the given ranges;
/// `None` outside Redis's limits.
pub fn encode(long_range: Range, lat_range: Range, longitude: f64, latitude: f64, step: u8) -> Option<Cell> {
    if step == 0 || step > 32 {
        return None;
    }
    let outside_limits = !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude);
    let outside_range = latitude < lat_range.min || latitude > lat_range.max || longitude < long_range.min || longitude > long_range.max;
    if outside_limits || outside_range {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * scale;
    // C converts the offsets to uint32 by truncation; `as` does the same here.
    Some(Cell { bits: spread(lat_offset as u32) | (spread(long_offset as u32) << 1), step })
}

/// The 52-bit score of a point (GEOADD).
pub fn score_of(longitude: f64, latitude: f64) -> Option<u64> {
    encode(LONG_RANGE, LAT_RANGE, longitude, latitude, STEP_MAX).map(|c| c.align52())
}

pub fn decode(long_range: Range, lat_range: Range, cell: Cell) -> Area {
    let lat_bits = squash(cell.bits);
    let long_bits = squash(cell.bits >> 1);
    let scale = (1u64 << cell.step) as f64;
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    Area {
        latitude: Range {
            min: lat_range.min + (f64::from(lat_bits) / scale) * lat_scale,
            max: lat_range.min + ((f64::from(lat_bits) + 1.0) / scale) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (f64::from(long_bits) / scale) * long_scale,
            max: long_range.min + ((f64::from(long_bits) + 1.0) / scale) * long_scale,
        },
    }
}

/// A double converted to uint64 as Redis's C cast does on x86-64 (`cvttsd2si`,
/// with the compiler's usual detour for values of 2^63 and more): a score that is not
/// a geohash (negative, infinite, NaN-free but huge) decodes to the same point as in
/// Redis. Rust's `as` saturates instead.
fn c_double_to_u64(d: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // cvttsd2si: truncation, or the "integer indefinite" i64::MIN when out of range.
    let convert = |x: f64| if x.is_nan() || !(-TWO_63..TWO_63).contains(&x) { i64::MIN } else { x as i64 };
    if d < TWO_63 {
        convert(d) as u64
    } else {
        (convert(d - TWO_63) as u64) ^ (1 << 63)
    }
}

/// The (longitude, latitude) a stored score stands for: its cell's centre, clamped.
pub fn position_of(score: f64) -> (f64, f64) {
    let area = decode(LONG_RANGE, LAT_RANGE, Cell { bits: c_double_to_u64(score), step: STEP_MAX });
    let longitude = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let latitude = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (longitude, latitude)
}

/// The standard 11-character geohash of a stored score (GEOHASH): decoded, then
/// encoded again over the usual ±90° latitude range.
pub fn geohash_string(score: f64) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (longitude, latitude) = position_of(score);
    let cell = encode(Range { min: -180.0, max: 180.0 }, Range { min: -90.0, max: 90.0 }, longitude, latitude, STEP_MAX)?;
    let text = (0..11)
        .map(|i| {
            // Only 52 bits: the 11th character is always the zero digit.
            let index = if i == 10 { 0 } else { (cell.bits >> (52 - (i + 1) * 5)) & 0x1f };
            ALPHABET[index as usize] as char
        })
        .collect();
    Some(text)
}

// --- neighbours ---

fn move_x(cell: &mut Cell, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(cell.step) * 2;
    let mut x = cell.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = cell.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    cell.bits = x | y;
}

fn move_y(cell: &mut Cell, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(cell.step) * 2;
    let x = cell.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = cell.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> shift;
    cell.bits = x | y;
}

fn moved(cell: Cell, dx: i8, dy: i8) -> Cell {
    let mut c = cell;
    move_x(&mut c, dx);
    move_y(&mut c, dy);
    c
}

/// Redis's neighbour indexes in search order.
const NORTH: usize = 1;
const SOUTH: usize = 2;
const EAST: usize = 3;
const WEST: usize = 4;
const NORTH_EAST: usize = 5;
const NORTH_WEST: usize = 6;
const SOUTH_EAST: usize = 7;
const SOUTH_WEST: usize = 8;

/// The cell and its eight neighbours, in the order Redis searches them.
fn with_neighbours(cell: Cell) -> [Cell; 9] {
    [
        cell,
        moved(cell, 0, 1),
        moved(cell, 0, -1),
        moved(cell, 1, 0),
        moved(cell, -1, 0),
        moved(cell, 1, 1),
        moved(cell, -1, 1),
        moved(cell, 1, -1),
        moved(cell, -1, -1),
    ]
}

// --- search areas ---

/// What a search covers: a circle of `radius`, or a `width` × `height` box, around
/// (longitude, latitude); lengths in the unit whose size in metres is `to_meters`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Circle { radius: f64 },
    Box { width: f64, height: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub longitude: f64,
    pub latitude: f64,
    pub shape: Shape,
    pub to_meters: f64,
}

/// Redis's estimate of the cell size (bits per coordinate) for a search radius.
fn steps_for_radius(mut range_meters: f64, latitude: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&latitude) {
        step -= 1;
        if !(-80.0..=80.0).contains(&latitude) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

impl Search {
    /// The longitude and latitude bounds of the area (min lon, min lat, max lon, max lat).
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let (half_height, half_width) = match self.shape {
            Shape::Circle { radius } => (radius, radius),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (height, width) = (self.to_meters * half_height, self.to_meters * half_width);
        let lat_delta = rad_deg(height / EARTH_RADIUS_METERS);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_METERS / deg_rad(self.latitude + lat_delta).cos());
        let long_delta_bottom = rad_deg(width / EARTH_RADIUS_METERS / deg_rad(self.latitude - lat_delta).cos());
        let long_delta = if self.latitude < 0.0 { long_delta_bottom } else { long_delta_top };
        (self.longitude - long_delta, self.latitude - lat_delta, self.longitude + long_delta, self.latitude + lat_delta)
    }

    /// The cells to scan, in Redis's order; dropped ones are [`Cell::is_none`].
    pub fn cells(&self) -> [Cell; 9] {
        let (min_lon, min_lat, max_lon, max_lat) = self.bounds();
        let radius_meters = self.to_meters
            * match self.shape {
                Shape::Circle { radius } => radius,
                Shape::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
            };
        let mut steps = steps_for_radius(radius_meters, self.latitude);
        let Some(mut cell) = encode(LONG_RANGE, LAT_RANGE, self.longitude, self.latitude, steps) else { return [Cell::NONE; 9] };
        let mut cells = with_neighbours(cell);
        let area_of = |c: Cell| decode(LONG_RANGE, LAT_RANGE, c);
        // A cell too wide for an edge of the area: one step coarser.
        let decrease = area_of(cells[NORTH]).latitude.max < max_lat
            || area_of(cells[SOUTH]).latitude.min > min_lat
            || area_of(cells[EAST]).longitude.max < max_lon
            || area_of(cells[WEST]).longitude.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            let Some(coarser) = encode(LONG_RANGE, LAT_RANGE, self.longitude, self.latitude, steps) else { return [Cell::NONE; 9] };
            cell = coarser;
            cells = with_neighbours(cell);
        }
        if steps >= 2 {
            let area = area_of(cell);
            let mut clear = |which: [usize; 3]| which.iter().for_each(|&i| cells[i] = Cell::NONE);
            if area.latitude.min < min_lat {
                clear([SOUTH, SOUTH_WEST, SOUTH_EAST]);
            }
            if area.latitude.max > max_lat {
                clear([NORTH, NORTH_EAST, NORTH_WEST]);
            }
            if area.longitude.min < min_lon {
                clear([WEST, SOUTH_WEST, NORTH_WEST]);
            }
            if area.longitude.max > max_lon {
                clear([EAST, SOUTH_EAST, NORTH_EAST]);
            }
        }
        cells
    }

    /// The distance in metres from the centre to (longitude, latitude) if the point
    /// is inside the shape.
    pub fn distance_if_inside(&self, longitude: f64, latitude: f64) -> Option<f64> {
        match self.shape {
            Shape::Circle { radius } => {
                let d = distance(self.longitude, self.latitude, longitude, latitude);
                (d <= radius * self.to_meters).then_some(d)
            }
            Shape::Box { width, height } => {
                let (width_m, height_m) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(latitude, self.latitude) > height_m / 2.0 {
                    return None;
                }
                if distance(longitude, latitude, self.longitude, latitude) > width_m / 2.0 {
                    return None;
                }
                Some(distance(self.longitude, self.latitude, longitude, latitude))
            }
        }
    }
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Great-circle distance in metres (haversine), as Redis computes it.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_METERS * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_positions_and_geohashes_match_redis() {
        // From redis-server 7.0.15: GEOADD Sicily 13.361389 38.115556 Palermo, then
        // ZSCORE, GEOPOS and GEOHASH.
        let score = score_of(13.361389, 38.115556).unwrap();
        assert_eq!(score, 3479099956230698);
        let (lon, lat) = position_of(score as f64);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(geohash_string(score as f64).as_deref(), Some("sqc8b49rny0"));
        let catania = score_of(15.087269, 37.502669).unwrap();
        assert_eq!(geohash_string(catania as f64).as_deref(), Some("sqdtr74hyu0"));
        let d = distance(lon, lat, position_of(catania as f64).0, position_of(catania as f64).1);
        assert_eq!(format!("{:.4}", d / 1000.0), "166.2742");
    }

    #[test]
    fn scores_that_are_not_geohashes_decode_as_in_redis() {
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(-0.5), 0);
        assert_eq!(c_double_to_u64(2.5), 2);
        assert_eq!(c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(c_double_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(c_double_to_u64(1e19), 10_000_000_000_000_000_000);
    }

    #[test]
    fn out_of_range_points_have_no_score() {
        assert_eq!(score_of(180.1, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
        assert!(score_of(-180.0, -85.05112878).is_some());
    }

    #[test]
    fn neighbours_step_one_cell_each_way() {
        let cell = encode(LONG_RANGE, LAT_RANGE, 10.0, 10.0, 10).unwrap();
        let cells = with_neighbours(cell);
        let area = |c| decode(LONG_RANGE, LAT_RANGE, c);
        let centre = area(cell);
        assert_eq!(area(cells[NORTH]).latitude.min, centre.latitude.max);
        assert_eq!(area(cells[SOUTH]).latitude.max, centre.latitude.min);
        assert_eq!(area(cells[EAST]).longitude.min, centre.longitude.max);
        assert_eq!(area(cells[WEST]).longitude.max, centre.longitude.min);
    }

    #[test]
    fn a_search_covers_its_centre_cell_first() {
        let search = Search { longitude: 15.0, latitude: 37.0, shape: Shape::Circle { radius: 200.0 }, to_meters: 1000.0 };
        let cells = search.cells();
        let centre = encode(LONG_RANGE, LAT_RANGE, 15.0, 37.0, cells[0].step).unwrap();
        assert_eq!(cells[0], centre);
        assert_eq!(steps_for_radius(0.0, 0.0), 26);
        assert_eq!(steps_for_radius(f64::INFINITY, 0.0), 1);
    }
}
