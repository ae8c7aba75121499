//! The benchmark's charts: SVG line charts with plotters, a logarithmic x axis (stream length,
//! writers, lag) and a linear or logarithmic y axis.

use std::path::Path;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart to draw.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Caption.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// Whether the y axis is logarithmic.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

impl Chart {
    /// Draws the chart into an SVG file at `path`.
    pub fn draw(&self, path: &Path) -> Result<(), String> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let bounds = |values: Vec<f64>, log: bool| {
            let positive: Vec<f64> = values
                .into_iter()
                .filter(|v| v.is_finite() && (!log || *v > 0.0))
                .collect();
            let low = positive.iter().copied().fold(f64::INFINITY, f64::min);
            let high = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !low.is_finite() {
                return (1.0, 10.0);
            }
            if log {
                (low / 1.5, high * 1.5)
            } else {
                (0.0, if high > 0.0 { high * 1.15 } else { 1.0 })
            }
        };
        let (x0, x1) = bounds(points().map(|p| p.0).collect(), true);
        let (y0, y1) = bounds(points().map(|p| p.1).collect(), self.log_y);
        let x: LogCoord<f64> = (x0..x1).log_scale().into();
        if self.log_y {
            let y: LogCoord<f64> = (y0..y1).log_scale().into();
            self.render(path, x, y)
        } else {
            let y: RangedCoordf64 = (y0..y1).into();
            self.render(path, x, y)
        }
    }

    fn render<Y>(&self, path: &Path, x: LogCoord<f64>, y: Y) -> Result<(), String>
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let failed = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
        let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x, y)
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&|v| format_number(*v))
            .y_label_formatter(&|v| format_number(*v))
            .draw()
            .map_err(|e| failed(&e))?;
        for (n, series) in self.series.iter().enumerate() {
            let color = PALETTE[n % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| failed(&e))?
                .label(series.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    series
                        .points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| failed(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))
    }
}

/// 1, 10, 1k, 10k, 100k, 2.5, 0.3: short labels for either scale.
fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1_000_000.0 {
        format!("{:.0}M", value / 1_000_000.0)
    } else if magnitude >= 1_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if magnitude >= 10.0 || magnitude == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_its_lines_and_labels() {
        let dir = std::env::temp_dir().join(format!("plots-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("chart.svg");
        Chart {
            title: "Requests per command".into(),
            x_label: "events in stream".into(),
            y_label: "requests".into(),
            log_y: false,
            series: vec![
                Series {
                    name: "with snapshots".into(),
                    points: vec![(10.0, 3.0), (1000.0, 3.0), (100_000.0, 3.0)],
                },
                Series {
                    name: "without".into(),
                    points: vec![(10.0, 2.0), (1000.0, 2.0), (100_000.0, 29.0)],
                },
            ],
        }
        .draw(&path)
        .expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "an SVG document");
        assert!(svg.contains("with snapshots") && svg.contains("without"));
        assert!(svg.contains("100k"), "log axis labels are short");
        assert!(svg.matches("<circle").count() >= 6, "a marker per point");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(format_number(100_000.0), "100k");
        assert_eq!(format_number(10.0), "10");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(0.0), "0");
    }
}
