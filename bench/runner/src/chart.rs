//! Hand-rolled SVG charts for bench/RESULTS.md: lines over a numeric x axis
//! (optionally logarithmic, with shaded x ranges for fault windows) and
//! horizontal bars. Plain SVG 1.1, no scripts, readable on GitHub.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: &[&str] = &[
    "#1b7837", "#d6604d", "#4393c3", "#9970ab", "#e08214", "#35978f", "#878787",
];

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A shaded x range with a label (a fault window); `end` = `start` draws a line.
pub struct Band {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

pub struct Lines {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
}

/// Up to about six round tick values from 0 (or `lo`) to above `hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() * step;
    (0..=7)
        .map(|i| first + step * f64::from(i))
        .take_while(|v| *v <= hi + step * 0.999)
        .collect()
}

fn number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Maps data to the plot area.
struct Frame {
    x0: f64,
    x1: f64,
    y1: f64,
    log_x: bool,
}

impl Frame {
    fn fx(&self, x: f64) -> f64 {
        let t = |v: f64| if self.log_x { v.max(1e-9).log10() } else { v };
        let span = (t(self.x1) - t(self.x0)).max(1e-9);
        LEFT + (t(x) - t(self.x0)) / span * (W - LEFT - RIGHT)
    }
    fn fy(&self, y: f64) -> f64 {
        H - BOTTOM - y / self.y1.max(1e-9) * (H - TOP - BOTTOM)
    }
}

impl Lines {
    pub fn svg(&self) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let x0 = xs.clone().fold(f64::INFINITY, f64::min);
        let x1 = xs.fold(f64::NEG_INFINITY, f64::max);
        let y_hi = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let y_ticks = ticks(0.0, y_hi.max(1e-9));
        let (x0, x1) = if x0.is_finite() {
            (x0, x1.max(x0 + 1.0))
        } else {
            (0.0, 1.0)
        };
        let frame = Frame {
            x0,
            x1,
            y1: y_ticks.last().copied().unwrap_or(1.0),
            log_x: self.log_x,
        };
        let mut out = String::new();
        header(&mut out, &self.title);
        self.draw_bands(&mut out, &frame);
        axes(
            &mut out,
            &frame,
            &y_ticks,
            &self.x_ticks(x0, x1),
            &self.x_label,
            &self.y_label,
        );
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", frame.fx(x), frame.fy(y)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
            for &(x, y) in s.points.iter().filter(|_| s.points.len() <= 12) {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    frame.fx(x),
                    frame.fy(y)
                );
            }
            legend(&mut out, i, color, &s.name);
        }
        out.push_str("</svg>\n");
        out
    }

    fn x_ticks(&self, x0: f64, x1: f64) -> Vec<f64> {
        if !self.log_x {
            return ticks(x0, x1).into_iter().filter(|v| *v >= x0).collect();
        }
        // On a log axis, the x values themselves (connection counts).
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs
    }

    fn draw_bands(&self, out: &mut String, frame: &Frame) {
        for b in &self.bands {
            let (a, z) = (frame.fx(b.start), frame.fx(b.end.max(b.start)));
            let _ = writeln!(
                out,
                "<rect x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"#fdd49e\" \
                 stroke=\"#e08214\" opacity=\"0.6\"/>\n<text x=\"{:.1}\" y=\"{}\" \
                 fill=\"#b35806\">{}</text>",
                (z - a).max(1.5),
                H - TOP - BOTTOM,
                a + 3.0,
                TOP + 14.0,
                escape(&b.label)
            );
        }
    }
}

fn axes(out: &mut String, f: &Frame, y_ticks: &[f64], x_ticks: &[f64], xl: &str, yl: &str) {
    let (bottom, right) = (H - BOTTOM, W - RIGHT);
    let _ = writeln!(
        out,
        "<path d=\"M{LEFT},{TOP} V{bottom} H{right}\" fill=\"none\" stroke=\"#333\"/>"
    );
    for &y in y_ticks {
        let py = f.fy(y);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py + 4.0,
            number(y)
        );
    }
    for &x in x_ticks {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            f.fx(x),
            bottom + 16.0,
            number(x)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text transform=\"translate(16,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (LEFT + right) / 2.0,
        H - 12.0,
        escape(xl),
        (TOP + bottom) / 2.0,
        escape(yl)
    );
}

fn legend(out: &mut String, i: usize, color: &str, name: &str) {
    let y = TOP + 10.0 + 18.0 * i as f64;
    let x = W - RIGHT + 12.0;
    let _ = writeln!(
        out,
        "<rect x=\"{x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
         <text x=\"{}\" y=\"{y:.1}\" dy=\"0.35em\" dominant-baseline=\"middle\">{}</text>",
        y - 6.0,
        x + 16.0,
        escape(name)
    );
}

/// Horizontal bars, one per label, with the value written at the end.
pub struct Bars {
    pub title: String,
    pub unit: String,
    pub bars: Vec<(String, f64)>,
}

impl Bars {
    pub fn svg(&self) -> String {
        let hi = self.bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
        let mut out = String::new();
        header(&mut out, &self.title);
        let (label_w, row) = (300.0, (H - TOP - 20.0) / self.bars.len().max(1) as f64);
        let width = W - label_w - 110.0;
        for (i, (label, v)) in self.bars.iter().enumerate() {
            let y = TOP + 10.0 + row * i as f64;
            let h = (row * 0.7).min(30.0);
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\
                 <rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" dominant-baseline=\"middle\">{} {}</text>",
                label_w - 8.0,
                y + h / 2.0,
                escape(label),
                v / hi * width,
                COLORS[i % COLORS.len()],
                label_w + v / hi * width + 6.0,
                y + h / 2.0,
                number(*v),
                escape(&self.unit)
            );
        }
        out.push_str("</svg>\n");
        out
    }
}
