//! The end-of-run PNG: add-on reward per step over training (left) and the distribution of the
//! bundle's first metric, prior vs customized (right); with a learning curve (`--eval-every`), a
//! second row: the first metric and the success rate at each evaluation, against the prior's. The font ships with resq
//! (`assets/fonts`), so plots render the same on a machine without system fonts.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::session::customize::Outcome;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).ok();
    });
}

/// Fraction of samples in each of `bins` equal bins over `[lo, hi]`.
fn histogram(samples: &[f32], lo: f32, hi: f32, bins: usize) -> Vec<f32> {
    let mut h = vec![0.0f32; bins];
    let w = (hi - lo) / bins as f32;
    for &s in samples {
        let i = (((s - lo) / w) as isize).clamp(0, bins as isize - 1) as usize;
        h[i] += 1.0;
    }
    let n = samples.len().max(1) as f32;
    h.iter_mut().for_each(|v| *v /= n);
    h
}

fn num(p: &serde_json::Value, k: &str) -> f64 {
    p.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
}

/// One learning-curve panel: `ys` at `steps`, and the prior's value as a dashed line; the y
/// range is `range`, or fits the values.
fn curve_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    steps: &[f64],
    ys: &[f64],
    prior: f64,
    name: &str,
    range: Option<(f64, f64)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let x_max = steps.iter().copied().fold(1.0, f64::max);
    let finite = ys.iter().copied().chain([prior]).filter(|v| v.is_finite());
    let fit = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = range.unwrap_or(if fit.0.is_finite() { fit } else { (0.0, 1.0) });
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .caption(format!("learning curve: `{name}` at each evaluation"), ("sans-serif", 16))
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))?;
    chart.configure_mesh().x_desc("environment steps").y_desc(name).draw()?;
    let dashes = (0..40).map(|i| {
        let (a, b) = (x_max * i as f64 / 40.0, x_max * (i as f64 + 0.5) / 40.0);
        PathElement::new(vec![(a, prior), (b, prior)], BLUE.stroke_width(2))
    });
    chart
        .draw_series(dashes)?
        .label("prior")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let pts: Vec<(f64, f64)> =
        steps.iter().copied().zip(ys.iter().copied()).filter(|p| p.1.is_finite()).collect();
    chart.draw_series(LineSeries::new(pts.clone(), RED.stroke_width(2)))?;
    chart
        .draw_series(pts.iter().map(|p| Circle::new(*p, 4, RED.filled())))?
        .label("customized")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

pub fn write(path: &Path, title: &str, metric_name: &str, o: &Outcome) -> Result<()> {
    register_font();
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let e = |err: &dyn std::fmt::Display| anyhow!("plotting {}: {err}", path.display());
    let curve = crate::session::report::curve(o);
    let height = if curve.is_empty() { 560 } else { 1060 };
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|x| e(&x))?;
    let (top, bottom) = root.split_vertically(530);
    let (left, right) = top.split_horizontally(700);
    if !curve.is_empty() {
        let (cl, cr) = bottom.split_horizontally(700);
        let steps: Vec<f64> = curve.iter().map(|p| num(p, "env_steps")).collect();
        let prior_metric = o.prior.metrics.first().map_or(o.prior.addon_return, |m| m.1);
        let key = o.prior.metrics.first().map_or("addon_return", |m| m.0.as_str());
        let label = if o.prior.metrics.is_empty() { "add-on return" } else { metric_name };
        let metric: Vec<f64> = curve.iter().map(|p| num(p, key)).collect();
        curve_panel(&cl, &steps, &metric, prior_metric, label, None).map_err(|x| e(&x))?;
        let success: Vec<f64> = curve.iter().map(|p| num(p, "success_rate")).collect();
        curve_panel(&cr, &steps, &success, o.prior.success_rate, "success rate", Some((0.0, 1.0)))
            .map_err(|x| e(&x))?;
    }

    // Left: add-on reward per step of each training episode, and its running mean.
    let h = &o.history;
    let xs: Vec<f64> = h.episode_end_step.clone();
    let ys: Vec<f64> = h.episode_addon_per_step.iter().map(|v| *v as f64).collect();
    let x_max = xs.last().copied().unwrap_or(1.0).max(1.0);
    let (mut y_lo, mut y_hi) =
        ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    if !y_lo.is_finite() {
        (y_lo, y_hi) = (-1.0, 0.0);
    }
    let pad = ((y_hi - y_lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&left)
        .margin(15)
        .caption("add-on reward per step, training episodes", ("sans-serif", 16))
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_lo - pad)..(y_hi + pad))
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("environment steps")
        .y_desc("mean r_R per step")
        .draw()
        .map_err(|x| e(&x))?;
    chart
        .draw_series(xs.iter().zip(&ys).map(|(x, y)| Circle::new((*x, *y), 2, BLUE.mix(0.4).filled())))
        .map_err(|x| e(&x))?
        .label("episode")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
    let window = 10usize;
    let smooth: Vec<(f64, f64)> = (0..ys.len())
        .map(|i| {
            let lo = i.saturating_sub(window - 1);
            (xs[i], ys[lo..=i].iter().sum::<f64>() / (i - lo + 1) as f64)
        })
        .collect();
    chart
        .draw_series(LineSeries::new(smooth, RED.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label(format!("mean of last {window}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;

    // Right: distribution of the first metric over evaluation steps.
    let (a, b) = (&o.prior.first_metric_samples, &o.customized.first_metric_samples);
    let hi = a.iter().chain(b.iter()).copied().fold(0.0f32, f32::max).max(1e-3);
    let lo = a.iter().chain(b.iter()).copied().fold(0.0f32, f32::min);
    let bins = 40;
    let (ha, hb) = (histogram(a, lo, hi, bins), histogram(b, lo, hi, bins));
    let top = ha.iter().chain(hb.iter()).copied().fold(0.0f32, f32::max).max(1e-3) * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .margin(15)
        .caption(format!("`{metric_name}` per evaluation step"), ("sans-serif", 16))
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0f32..top)
        .map_err(|x| e(&x))?;
    chart.configure_mesh().x_desc(metric_name).y_desc("fraction of steps").draw().map_err(|x| e(&x))?;
    let w = (hi - lo) / bins as f32;
    for (hist, color, label) in [(&ha, BLUE, "prior"), (&hb, RED, "customized")] {
        chart
            .draw_series(hist.iter().enumerate().map(|(i, v)| {
                let x0 = lo + i as f32 * w;
                Rectangle::new([(x0, 0.0), (x0 + w, *v)], color.mix(0.35).filled())
            }))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.6).filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
