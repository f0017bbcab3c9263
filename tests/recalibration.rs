//! A model carries its recalibration: through `predict`, `intervals`, and a
//! save/load round trip.

use candle_bnn::calibrate::{Recalibration, RecalibrationMethod};
use candle_bnn::checkpoint;
use candle_bnn::data::toy_gap;
use candle_bnn::{BayesMlpConfig, BayesRegressor, Result, TrainConfig};
use candle_core::Device;

fn trained() -> Result<BayesRegressor> {
    let data = toy_gap(300, 0.2, 0)?;
    let train = TrainConfig {
        epochs: 30,
        progress: false,
        ..TrainConfig::default()
    };
    BayesRegressor::fit(&data, BayesMlpConfig::new(1, &[16]), &train, &Device::Cpu)
}

#[test]
fn recalibration_changes_predictions_and_survives_save_and_load() -> Result<()> {
    let held_out = toy_gap(200, 0.2, 7)?;
    let fresh = toy_gap(50, 0.2, 8)?;
    for method in [
        RecalibrationMethod::Scale,
        RecalibrationMethod::Isotonic,
        RecalibrationMethod::Conformal,
    ] {
        let mut model = trained()?;
        let raw = model.predict(&fresh.x, 50)?;
        let raw_iv = model.intervals(&raw, 0.9)?;
        model.calibrate(method, &held_out, 50)?;
        assert_eq!(model.recalibration().method(), Some(method));
        let dist = model.predict(&fresh.x, 50)?;
        let iv = model.intervals(&dist, 0.9)?;
        // Every method moves the 90% bounds (a fitted map that is exactly the
        // identity on all 50 rows would be a failure to fit anything).
        assert_ne!(iv.upper, raw_iv.upper, "{method}: intervals unchanged");
        if method == RecalibrationMethod::Scale {
            // Variance scaling multiplies every component std by s; the
            // component means (and so the epistemic spread) stay.
            let Recalibration::VarianceScaling { s } = *model.recalibration() else {
                panic!("scale fitted {:?}", model.recalibration());
            };
            for i in 0..dist.len() {
                assert_eq!(dist.component_means(i), raw.component_means(i));
                for (a, b) in dist.component_stds(i).iter().zip(raw.component_stds(i)) {
                    assert!((a - s * b).abs() <= 1e-12 * a, "{a} vs {s}·{b}");
                }
            }
        }

        let dir = tempfile::tempdir().map_err(|e| candle_bnn::Error::Io {
            path: "tempdir".into(),
            source: e,
        })?;
        checkpoint::save(&model, dir.path())?;
        let loaded = checkpoint::load_regressor(dir.path(), &Device::Cpu)?;
        assert_eq!(loaded.recalibration(), model.recalibration(), "{method}");
        let again = loaded.predict(&fresh.x, 50)?;
        assert_eq!(again, dist, "{method}: reloaded predictions differ");
        assert_eq!(
            loaded.intervals(&again, 0.9)?,
            iv,
            "{method}: reloaded intervals differ"
        );
    }
    Ok(())
}
