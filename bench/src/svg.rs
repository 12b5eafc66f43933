//! Line charts as standalone SVG files (they render in any browser): one
//! or more series of (x, y) points, linear or logarithmic x axis, the y
//! axis from zero. No dependencies; labels are escaped.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub series: Vec<Series>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A round tick step near `span / 5`.
fn step(span: f64) -> f64 {
    let raw = (span / 5.0).max(1e-12);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(raw)
}

fn label(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v.abs() >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

impl Chart {
    pub fn render(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let tx = |x: f64| if self.log_x { x.max(1e-12).log10() } else { x };
        let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0f64);
        for &(x, y) in points {
            x_min = x_min.min(tx(x));
            x_max = x_max.max(tx(x));
            y_max = y_max.max(y);
        }
        if x_min > x_max {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max - x_min < 1e-12 {
            x_max = x_min + 1.0;
        }
        let y_step = step(y_max.max(1e-12));
        let y_top = (y_max / y_step).ceil().max(1.0) * y_step;
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| LEFT + (tx(x) - x_min) / (x_max - x_min) * plot_w;
        let py = |y: f64| TOP + plot_h - y / y_top * plot_h;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        // Y grid and labels.
        let mut y = 0.0;
        while y <= y_top + y_step * 0.01 {
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{x2}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{lx}" y="{ly}" text-anchor="end">{text}</text>"##,
                x2 = WIDTH - RIGHT,
                yy = py(y),
                lx = LEFT - 6.0,
                ly = py(y) + 4.0,
                text = label(y)
            );
            y += y_step;
        }
        // X ticks: at each point's x (charts here have few points).
        let mut xs: Vec<f64> =
            self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        xs.dedup();
        for x in xs {
            let _ = write!(
                s,
                r##"<line x1="{0}" x2="{0}" y1="{TOP}" y2="{1}" stroke="#eee"/><text x="{0}" y="{2}" text-anchor="middle">{3}</text>"##,
                px(x),
                TOP + plot_h,
                TOP + plot_h + 18.0,
                label(x)
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 15.0,
            escape(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(20,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let path: Vec<String> =
                series.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for &(x, y) in &series.points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{}: {}</title></circle>"#,
                    px(x),
                    py(y),
                    label(x),
                    y.round()
                );
            }
            let ly = TOP + 16.0 + i as f64 * 16.0;
            let _ = write!(
                s,
                r#"<rect x="{}" y="{}" width="12" height="3" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
                LEFT + 12.0,
                ly - 4.0,
                LEFT + 30.0,
                ly,
                escape(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Writes the chart to `dir/<file>`.
    pub fn write(&self, dir: &std::path::Path, file: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file);
        std::fs::write(&path, self.render())?;
        println!("wrote {}", path.display());
        Ok(())
    }
}
