//! Line charts, one line per series, drawn with plotters as SVG and as PNG.
//!
//! The PNG's text needs a font file. plotters' usual `ttf` backend looks fonts up through
//! fontconfig, which a fresh CI machine may lack (and whose `-dev` package the build would need);
//! its `ab_glyph` backend draws with a font registered at run time instead, so racebank-load embeds
//! DejaVu Sans (`load/assets/`, a licence that permits redistribution) and the PNGs look the same on
//! every machine. The SVG names `sans-serif` and leaves the drawing of its text to the viewer.
//!
//! plotters' own drawing of `ab_glyph` text places each glyph without its side bearing (`pe r`),
//! so the PNG backend is wrapped ([`Crisp`]) to draw text itself, glyph by glyph at sub-pixel
//! positions, with the same layout plotters measured.
//!
//! The legend is drawn above the plot, never inside it, so no line can hide under it.

use std::sync::OnceLock;

use ab_glyph::{Font as _, FontRef, ScaleFont as _};
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
// `BackendStyle` is named in full below: in scope, its `stroke_width` would clash with `Color`'s.
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

/// DejaVu Sans 2.37, from Debian's `fonts-dejavu-core` (licence in `load/assets/`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family the charts ask for; the embedded font is registered under it.
const FAMILY: &str = "sans-serif";

/// Pixels (PNG) or user units (SVG).
const WIDTH: u32 = 960;
/// Thousandths of an x position per drawn unit.
const X_SCALE: f64 = 1000.0;
const HEIGHT: u32 = 600;

/// Colours of the lines in order: the first mode (unguarded, by default) in red.
const PALETTE: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const INK: RGBColor = RGBColor(33, 37, 41);
const MUTED: RGBColor = RGBColor(90, 96, 104);
const GRID: RGBColor = RGBColor(225, 228, 232);

/// A chart: a title, its axes, and the lines.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// Above everything.
    pub title: String,
    /// Under the title: what every point of the chart shares.
    pub subtitle: String,
    /// The horizontal axis.
    pub x: XAxis,
    /// The vertical axis.
    pub y: YAxis,
    /// One line each.
    pub series: Vec<Series>,
}

/// The horizontal axis.
#[derive(Debug, Clone)]
pub(crate) enum XAxis {
    /// Requests in flight, on a log2 scale, a tick at each value; points give the concurrency.
    Concurrency(Vec<u64>),
    /// A plain linear scale from 0 (a bank run's seconds).
    Linear {
        /// The axis's title.
        label: String,
        /// The largest value drawn.
        max: f64,
    },
    /// Named positions, evenly spaced; points give the index of the name.
    Categories {
        /// The axis's title.
        label: String,
        /// The names, left to right.
        names: Vec<String>,
    },
}

/// The vertical axis.
#[derive(Debug, Clone)]
pub(crate) enum YAxis {
    /// A share from 0 to 1, drawn from 0 % to 100 %.
    Share {
        /// The axis's title.
        label: String,
    },
    /// A count from 0 to a little above the largest value.
    Count {
        /// The axis's title.
        label: String,
    },
}

/// One line.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in the axes' units.
    pub points: Vec<(f64, f64)>,
    /// Drawn as dots only, no line between them (one per observation).
    pub dots: bool,
}

/// The chart as an SVG document.
pub(crate) fn to_svg(chart: &Chart) -> anyhow::Result<String> {
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|e| anyhow!("cannot draw the chart {:?}: {e}", chart.title))?;
        root.present()
            .map_err(|e| anyhow!("cannot draw the chart {:?}: {e}", chart.title))?;
    }
    Ok(svg)
}

/// The chart as a PNG file (8-bit RGB).
pub(crate) fn to_png(chart: &Chart) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root =
            Crisp(BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT))).into_drawing_area();
        draw(&root, chart).map_err(|e| anyhow!("cannot draw the chart {:?}: {e}", chart.title))?;
        root.present()
            .map_err(|e| anyhow!("cannot draw the chart {:?}: {e}", chart.title))?;
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png)
}

/// Registers the embedded font once per process.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    ok.then_some(())
        .ok_or_else(|| anyhow!("the embedded chart font could not be read"))
}

/// The title, the subtitle and the legend, above the plot.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "pixel coordinates and axis positions: small numbers, in range by construction"
)]
fn draw_header<DB: DrawingBackend>(
    header: &DrawingArea<DB, Shift>,
    chart: &Chart,
    legend: &Legend,
) -> DrawResult<DB> {
    let centre = WIDTH as i32 / 2;
    let top = Pos::new(HPos::Center, VPos::Top);
    header.draw_text(
        &chart.title,
        &(FAMILY, 26).into_font().color(&INK).pos(top),
        (centre, 14),
    )?;
    header.draw_text(
        &chart.subtitle,
        &(FAMILY, 15).into_font().color(&MUTED).pos(top),
        (centre, 48),
    )?;
    for item in &legend.items {
        let (x, y) = (item.x, 84 + 26 * item.row);
        let colour = PALETTE[item.index % PALETTE.len()];
        header.draw(&PathElement::new(
            vec![(x, y), (x + 28, y)],
            colour.stroke_width(3),
        ))?;
        draw_marker(header, item.index, (x + 14, y), colour)?;
        header.draw_text(
            &item.name,
            &(FAMILY, 15)
                .into_font()
                .color(&INK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
            (x + 36, y),
        )?;
    }
    Ok(())
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "pixel coordinates and axis positions: small numbers, in range by construction"
)]
fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let legend = legend_layout(root, chart)?;
    let header_height = 74 + 26 * legend.rows;
    let (header, body) = root.split_vertically(header_height);

    draw_header(&header, chart, &legend)?;

    // plotters formats ticks bound to key points only on integer axes, so positions are drawn in
    // thousandths (x) and in hundred-thousandths of a share (y): far finer than a pixel.
    let y_scale = chart.y.scale();
    let to_x = |v: f64| (v * X_SCALE).round() as i64;
    let to_y = |v: f64| (v * y_scale).round() as i64;
    let (x_range, x_keys) = chart.x.range();
    let (y_range, y_keys) = chart.y.range(&chart.series);
    let mut plot = ChartBuilder::on(&body)
        .margin_left(20)
        .margin_right(36)
        .margin_top(8)
        .margin_bottom(16)
        .x_label_area_size(56)
        .y_label_area_size(86)
        .build_cartesian_2d(
            (to_x(x_range.start)..to_x(x_range.end))
                .with_key_points(x_keys.into_iter().map(to_x).collect()),
            (to_y(y_range.start)..to_y(y_range.end))
                .with_key_points(y_keys.into_iter().map(to_y).collect()),
        )?;
    let x_label = |v: &i64| chart.x.tick(*v as f64 / X_SCALE);
    let y_label = |v: &i64| chart.y.tick(*v as f64 / y_scale);
    plot.configure_mesh()
        .x_desc(chart.x.label())
        .y_desc(chart.y.label())
        .axis_desc_style((FAMILY, 16).into_font().color(&INK))
        .label_style((FAMILY, 14).into_font().color(&INK))
        .bold_line_style(GRID.stroke_width(1))
        .axis_style(MUTED.stroke_width(1))
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()?;

    // The first series last, so the line the eye looks for first is on top.
    for (index, series) in chart.series.iter().enumerate().rev() {
        let colour = PALETTE[index % PALETTE.len()];
        let points: Vec<(i64, i64)> = series
            .points
            .iter()
            .map(|&(x, y)| (to_x(chart.x.position(x)), to_y(y)))
            .collect();
        if series.dots {
            for point in points {
                let at = plot.backend_coord(&point);
                root.draw(&Circle::new(at, 3, colour.filled()))?;
            }
            continue;
        }
        plot.draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))?;
        for point in points {
            let at = plot.backend_coord(&point);
            draw_marker(root, index, at, colour)?;
        }
    }
    Ok(())
}

/// A different marker per series, so lines that lie on each other stay distinguishable.
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    index: usize,
    at: (i32, i32),
    colour: RGBColor,
) -> DrawResult<DB> {
    match index % 3 {
        0 => area.draw(&Circle::new(at, 5, colour.filled())),
        1 => area.draw(&TriangleMarker::new(at, 7, colour.filled())),
        _ => area.draw(&Cross::new(at, 6, colour.stroke_width(3))),
    }
}

/// Where each legend entry goes: centred rows under the subtitle, wrapped to the width.
struct Legend {
    rows: i32,
    items: Vec<LegendItem>,
}

struct LegendItem {
    index: usize,
    name: String,
    row: i32,
    x: i32,
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "pixel coordinates and axis positions: small numbers, in range by construction"
)]
fn legend_layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<Legend, DrawingAreaErrorKind<DB::ErrorType>> {
    let font = (FAMILY, 15).into_font();
    let usable = WIDTH as i32 - 80;
    // (index, name, width) per row.
    let mut rows: Vec<Vec<(usize, String, i32)>> = vec![Vec::new()];
    let mut row_width = 0;
    for (index, series) in chart.series.iter().enumerate() {
        let mut name = series.name.clone();
        if matches!(chart.y, YAxis::Share { .. })
            && !series.points.is_empty()
            && series.points.iter().all(|&(_, y)| y == 0.0)
        {
            name.push_str(" (none lost)");
        }
        let (text_width, _) = root.estimate_text_size(&name, &TextStyle::from(font.clone()))?;
        let width = 36 + text_width as i32 + 28;
        if row_width + width > usable && row_width > 0 {
            rows.push(Vec::new());
            row_width = 0;
        }
        row_width += width;
        if let Some(row) = rows.last_mut() {
            row.push((index, name, width));
        }
    }
    let mut items = Vec::new();
    for (row_index, row) in rows.iter().enumerate() {
        let total: i32 = row.iter().map(|(_, _, width)| width).sum::<i32>() - 28;
        let mut x = (WIDTH as i32 - total) / 2;
        for (index, name, width) in row {
            items.push(LegendItem {
                index: *index,
                name: name.clone(),
                row: row_index as i32,
                x,
            });
            x += width;
        }
    }
    Ok(Legend {
        rows: rows.len() as i32,
        items,
    })
}

impl XAxis {
    /// The range of positions, with a margin, and a tick at every value.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a tick count: small and positive by construction"
    )]
    fn range(&self) -> (std::ops::Range<f64>, Vec<f64>) {
        match self {
            XAxis::Concurrency(values) => {
                let keys: Vec<f64> = values.iter().map(|&c| self.position(c as f64)).collect();
                let low = keys.iter().copied().fold(f64::INFINITY, f64::min);
                let high = keys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let (low, high) = if low.is_finite() {
                    (low, high)
                } else {
                    (0.0, 1.0)
                };
                (low - 0.3..high + 0.3, keys)
            }
            XAxis::Linear { max, .. } => {
                let step = nice_step(max.max(0.001) / 8.0);
                let top = (max / step).ceil().max(1.0) * step;
                let ticks = (0..=(top / step).round() as usize)
                    .map(|i| i as f64 * step)
                    .collect();
                (-top * 0.02..top * 1.02, ticks)
            }
            XAxis::Categories { names, .. } => (
                -0.4..(names.len().max(1) as f64 - 0.6),
                (0..names.len()).map(|i| i as f64).collect(),
            ),
        }
    }

    /// Where a value sits on the axis.
    fn position(&self, value: f64) -> f64 {
        match self {
            XAxis::Concurrency(_) => value.max(1.0).log2(),
            XAxis::Categories { .. } | XAxis::Linear { .. } => value,
        }
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "pixel coordinates and axis positions: small numbers, in range by construction"
    )]
    fn tick(&self, position: f64) -> String {
        match self {
            XAxis::Concurrency(_) => format!("{}", position.exp2().round()),
            XAxis::Linear { .. } => format!("{}", (position * 1000.0).round() / 1000.0),
            XAxis::Categories { names, .. } => names
                .get(position.round().max(0.0) as usize)
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn label(&self) -> String {
        match self {
            XAxis::Concurrency(_) => "concurrency: requests in flight (log2 scale)".into(),
            XAxis::Categories { label, .. } | XAxis::Linear { label, .. } => label.clone(),
        }
    }
}

impl YAxis {
    /// The range, with a little room for the markers at the ends, and the ticks.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "pixel coordinates and axis positions: small numbers, in range by construction"
    )]
    fn range(&self, series: &[Series]) -> (std::ops::Range<f64>, Vec<f64>) {
        match self {
            YAxis::Share { .. } => (-0.03..1.04, (0..=5).map(|i| f64::from(i) * 0.2).collect()),
            YAxis::Count { .. } => {
                let highest = series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|&(_, y)| y))
                    .fold(0.0, f64::max);
                let step = nice_step(highest.max(1.0) / 5.0);
                let top = (highest / step).ceil().max(1.0) * step;
                let ticks = (0..=(top / step).round() as usize)
                    .map(|i| i as f64 * step)
                    .collect();
                (-top * 0.03..top * 1.04, ticks)
            }
        }
    }

    /// Drawn units per unit of value.
    fn scale(&self) -> f64 {
        match self {
            YAxis::Share { .. } => 100_000.0,
            YAxis::Count { .. } => 1.0,
        }
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "pixel coordinates and axis positions: small numbers, in range by construction"
    )]
    fn tick(&self, value: f64) -> String {
        match self {
            YAxis::Share { .. } => format!("{:.0} %", value * 100.0),
            YAxis::Count { .. } => thousands(value.round() as u64),
        }
    }

    fn label(&self) -> String {
        match self {
            YAxis::Share { label } | YAxis::Count { label } => label.clone(),
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power)
}

/// `12345` as `12 345` (a thin space between thousands).
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(digit);
    }
    out
}

/// The bitmap backend, drawing its text with correct glyph positions.
struct Crisp<'a>(BitMapBackend<'a>);

type BackendResult<E> = Result<(), DrawingErrorKind<E>>;
type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

impl DrawingBackend for Crisp<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> BackendResult<Self::ErrorType> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> BackendResult<Self::ErrorType> {
        self.0.present()
    }

    fn draw_pixel(&mut self, at: BackendCoord, colour: BackendColor) -> BackendResult<BitmapError> {
        self.0.draw_pixel(at, colour)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> BackendResult<BitmapError> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> BackendResult<BitmapError> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> BackendResult<BitmapError> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        centre: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> BackendResult<BitmapError> {
        self.0.draw_circle(centre, radius, style, fill)
    }

    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> BackendResult<BitmapError> {
        self.0.fill_polygon(vertices, style)
    }

    fn blit_bitmap(
        &mut self,
        at: BackendCoord,
        size: (u32, u32),
        source: &[u8],
    ) -> BackendResult<BitmapError> {
        self.0.blit_bitmap(at, size, source)
    }

    /// plotters-backend's own `draw_text` (anchor, rotation, clipping), with each glyph drawn at
    /// its real position: the pen's sub-pixel x plus its side bearing.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        reason = "pixel coordinates and axis positions: small numbers, in range by construction"
    )]
    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        at: BackendCoord,
    ) -> BackendResult<BitmapError> {
        let colour = style.color();
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let (w, h) = self.get_size();
        let font =
            FontRef::try_from_slice(FONT).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let scaled = font.as_scaled(style.size() as f32);
        // Where plotters puts the baseline: half the size below the top of the layout box.
        let baseline = style.size() as f32 / 2.0;
        let mut pen = 0.0f32;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(previous) = previous {
                pen += scaled.kern(previous, id);
            }
            previous = Some(id);
            let glyph = id.with_scale_and_position(scaled.scale(), ab_glyph::point(pen, baseline));
            pen += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, coverage| pixels.push((x, y, coverage)));
            for (x, y, coverage) in pixels {
                let x = bounds.min.x as i32 + x as i32;
                let y = bounds.min.y as i32 + y as i32;
                let (x, y) = transform.transform(x + dx - min_x, y + dy - min_y);
                let (x, y) = (at.0 + x, at.1 + y);
                if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                    self.draw_pixel(
                        (x, y),
                        BackendColor {
                            alpha: colour.alpha * f64::from(coverage.min(1.0)),
                            rgb: colour.rgb,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.5), 2.0);
        assert_eq!(nice_step(3000.0), 5000.0);
        assert_eq!(nice_step(6000.0), 10000.0);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1234), "1\u{2009}234");
        assert_eq!(thousands(1_234_567), "1\u{2009}234\u{2009}567");
    }

    #[test]
    fn concurrency_ticks_read_as_the_concurrency() {
        let axis = XAxis::Concurrency(vec![1, 2, 64]);
        let (_, keys) = axis.range();
        let ticks: Vec<String> = keys.iter().map(|&k| axis.tick(k)).collect();
        assert_eq!(ticks, ["1", "2", "64"]);
    }
}
