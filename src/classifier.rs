//! A Bayesian MLP classifier that works in the user's units: it z-scores the
//! features on the training data, trains a network of any family
//! ([`Network`]: BBB, MC dropout, ensemble) with a categorical head, and predicts
//! [`CategoricalMixture`]s; plus [`auroc`], to score how well an uncertainty
//! (predictive entropy, mutual information) separates in- from
//! out-of-distribution inputs.
//!
//! ```text
//! x' = (x - mean_x) / s_x                  (ddof = 0; s = 1 if constant)
//! p_t(y | x) = softmax(f_{w_t}(x'))_y,     w_t ~ q(w),  t = 1..T
//! p(y | x)  ≈ (1/T) Σ_t p_t(y | x)
//! ```

use candle_core::{Device, Tensor};

use crate::calibrate::{apply_temperature, check_temperature, fit_temperature};
use crate::data::{Dataset, Standardizer};
use crate::ensemble::EnsembleConfig;
use crate::likelihood::LikelihoodKind;
use crate::mc_dropout::McDropoutConfig;
use crate::model::{BayesMlpConfig, StochasticModel};
use crate::network::{Network, NetworkSpec};
use crate::predictive::{predict, CategoricalMixture};
use crate::regressor::PREDICT_STREAM;
use crate::train::{fit, TrainConfig, TrainReport};
use crate::{Error, Result};

/// A Bayes-by-Backprop classifier: [`BayesMlpConfig`]'s defaults with a
/// `classes`-way softmax head.
pub fn bbb_classifier(input_dim: usize, hidden: &[usize], classes: usize) -> NetworkSpec {
    NetworkSpec::Bbb(BayesMlpConfig {
        likelihood: LikelihoodKind::Categorical { classes },
        ..BayesMlpConfig::new(input_dim, hidden)
    })
}

/// An MC-dropout classifier: [`McDropoutConfig`]'s defaults, dropout rate
/// `dropout` and a `classes`-way softmax head.
pub fn mc_dropout_classifier(
    input_dim: usize,
    hidden: &[usize],
    classes: usize,
    dropout: f64,
) -> NetworkSpec {
    NetworkSpec::McDropout(McDropoutConfig {
        dropout,
        likelihood: LikelihoodKind::Categorical { classes },
        ..McDropoutConfig::new(input_dim, hidden)
    })
}

/// A deep-ensemble classifier: `members` plain MLPs
/// ([`EnsembleConfig::new`]) with a `classes`-way softmax head.
pub fn ensemble_classifier(
    input_dim: usize,
    hidden: &[usize],
    classes: usize,
    members: usize,
) -> NetworkSpec {
    NetworkSpec::Ensemble(EnsembleConfig::new(input_dim, hidden, members))
        .with_likelihood(LikelihoodKind::Categorical { classes })
}

/// The number of classes `K` of a categorical head, or an error naming
/// `likelihood` when the head is Gaussian.
pub fn classes_of(spec: &NetworkSpec) -> Result<usize> {
    match spec.likelihood() {
        LikelihoodKind::Categorical { classes } => Ok(classes),
        other => Err(Error::invalid(
            "likelihood",
            format!("{other:?}"),
            "Categorical { classes } for a classifier",
        )),
    }
}

/// Class indices from float labels (the [`Dataset::y`] layout): each value
/// must be an integer in `0..classes`; the error names the first row that is
/// not.
pub fn class_labels(y: &[f64], classes: usize) -> Result<Vec<usize>> {
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v < classes as f64 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(Error::invalid(
                    format!("label[{i}]"),
                    v,
                    format!("a class index, an integer in 0..{classes}"),
                ))
            }
        })
        .collect()
}

/// A trained classifier: the network, the feature scaling and names of its
/// training data, how it was trained, and its temperature (if calibrated).
#[derive(Debug, Clone)]
pub struct BayesClassifier {
    model: Network,
    x_scaler: Standardizer,
    feature_names: Vec<String>,
    target_name: String,
    train: TrainConfig,
    report: TrainReport,
    temperature: Option<f64>,
}

impl BayesClassifier {
    /// Standardizes the features of `data`, builds the network of `spec`
    /// (whose `input_dim` must equal the number of features, with a
    /// categorical head) and trains it on the labels `data.y` (class indices
    /// `0..K`, see [`class_labels`]) by minimizing
    /// `mean_i[-ln p(y_i | x_i, w)] / T + beta · KL / N` ([`crate::elbo`]).
    /// The one `train.seed` drives the initialization, the forward-pass noise
    /// and the minibatch order.
    pub fn fit(
        data: &Dataset,
        spec: &NetworkSpec,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let classes = classes_of(spec)?;
        spec.validate()?;
        if spec.input_dim() != data.n_features() {
            return Err(Error::invalid(
                "input_dim",
                spec.input_dim(),
                format!("the number of features, {}", data.n_features()),
            ));
        }
        if data.is_empty() {
            return Err(Error::invalid("data", "0 rows", "at least 1 training row"));
        }
        let labels = class_labels(&data.y, classes)?;
        let x_scaler = Standardizer::fit(&data.x, data.n_features())?;
        let xs = x_scaler.transform_tensor(&data.x, device)?;
        let ys: Vec<f32> = labels.iter().map(|&k| k as f32).collect();
        let ys = Tensor::from_vec(ys, (data.len(), 1), device)?;
        let model = spec.build(train.seed, device)?;
        let report = fit(&model, &xs, &ys, train)?;
        Ok(Self {
            model,
            x_scaler,
            feature_names: data.feature_names.clone(),
            target_name: data.target_name.clone(),
            train: train.clone(),
            report,
            temperature: None,
        })
    }

    /// Reassembles a trained classifier (e.g. from a checkpoint), checking
    /// that the head is categorical, that the scaling and names fit the
    /// model's input, and the temperature.
    pub fn from_parts(
        model: Network,
        x_scaler: Standardizer,
        (feature_names, target_name): (Vec<String>, String),
        (train, report): (TrainConfig, TrainReport),
        temperature: Option<f64>,
    ) -> Result<Self> {
        let spec = model.spec();
        classes_of(&spec)?;
        let d = spec.input_dim();
        if x_scaler.n_cols() != d || feature_names.len() != d {
            return Err(Error::Shape {
                context: "BayesClassifier::from_parts".into(),
                message: format!(
                    "the model reads {d} features, but there are {} feature names and {} feature scalings",
                    feature_names.len(),
                    x_scaler.n_cols()
                ),
            });
        }
        if let Some(t) = temperature {
            check_temperature(t)?;
        }
        Ok(Self {
            model,
            x_scaler,
            feature_names,
            target_name,
            train,
            report,
            temperature,
        })
    }

    /// The predictive distribution of each row of `x` (row-major, original
    /// units) from `samples` stochastic passes: per row, `samples`
    /// probability vectors over the classes; after [`Self::calibrate`], the
    /// tempered mean probabilities instead ([`apply_temperature`]).
    ///
    /// The draws come from a stream seeded by the training seed, so the same
    /// model gives the same predictions every call.
    pub fn predict(&self, x: &[f64], samples: usize) -> Result<CategoricalMixture> {
        let raw = self.predict_raw(x, samples)?;
        match self.temperature {
            Some(t) => apply_temperature(&raw, t),
            None => Ok(raw),
        }
    }

    /// [`Self::predict`] without the temperature.
    pub fn predict_raw(&self, x: &[f64], samples: usize) -> Result<CategoricalMixture> {
        self.predict_with_seed(x, samples, self.train.seed.wrapping_add(PREDICT_STREAM))
    }

    /// [`Self::predict_raw`] with the stochastic passes seeded by `seed`.
    pub fn predict_with_seed(
        &self,
        x: &[f64],
        samples: usize,
        seed: u64,
    ) -> Result<CategoricalMixture> {
        let xs = self.x_scaler.transform_tensor(x, self.model.device())?;
        self.model.reseed(seed);
        predict(&self.model, &xs, samples)?.into_classification()
    }

    /// Fits temperature scaling ([`fit_temperature`]) on held-out rows (never
    /// the training rows) and keeps it: every later [`Self::predict`] uses it.
    pub fn calibrate(&mut self, held_out: &Dataset, samples: usize) -> Result<()> {
        let labels = class_labels(&held_out.y, self.classes())?;
        let dist = self.predict_raw(&held_out.x, samples)?;
        self.temperature = Some(fit_temperature(&dist, &labels)?);
        Ok(())
    }

    /// With a given temperature (`None`: none), e.g. one fitted for another
    /// model of the same data.
    pub fn with_temperature(mut self, temperature: Option<f64>) -> Result<Self> {
        if let Some(t) = temperature {
            check_temperature(t)?;
        }
        self.temperature = temperature;
        Ok(self)
    }

    /// The fitted temperature `T` (`None` until calibrated).
    pub fn temperature(&self) -> Option<f64> {
        self.temperature
    }

    /// The trained network (reads standardized features).
    pub fn model(&self) -> &Network {
        &self.model
    }

    /// Number of classes `K`.
    pub fn classes(&self) -> usize {
        self.model.likelihood().kind().head_dim()
    }

    /// The feature scaling fitted on the training data.
    pub fn x_scaler(&self) -> &Standardizer {
        &self.x_scaler
    }

    /// Names of the feature columns, in model input order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Name of the label column.
    pub fn target_name(&self) -> &str {
        &self.target_name
    }

    /// How the model was trained (its seed seeds the predictions too).
    pub fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    /// What training did.
    pub fn report(&self) -> &TrainReport {
        &self.report
    }
}

/// Area under the ROC curve of a score that should be larger on positives
/// (e.g. predictive entropy, positives = out-of-distribution inputs): the
/// probability that a random positive outscores a random negative, ties
/// counted ½. Computed from ranks (the Mann–Whitney U statistic; Mann &
/// Whitney 1947; Hanley & McNeil 1982, "The meaning and use of the area under
/// a ROC curve"), in `O((m + n) log(m + n))`:
///
/// ```text
/// AUROC = (1/(m n)) Σ_i Σ_j [ 1(s⁺_i > s⁻_j) + ½ 1(s⁺_i = s⁻_j) ]
///       = (R⁺ - m(m + 1)/2) / (m n),   R⁺ = Σ of the positives' mid-ranks
/// ```
///
/// with `m` positives and `n` negatives, ranks 1-based over all `m + n`
/// scores and tied scores sharing the mean of their ranks. 1 is a perfect
/// detector, ½ is chance (or a constant score), 0 is perfectly inverted.
/// Returns NaN when either slice is empty or a score is NaN (no ranking
/// exists); infinities rank as the extremes.
pub fn auroc(scores_negative: &[f64], scores_positive: &[f64]) -> f64 {
    let (n, m) = (scores_negative.len(), scores_positive.len());
    let all = || scores_negative.iter().chain(scores_positive);
    if n == 0 || m == 0 || all().any(|s| s.is_nan()) {
        return f64::NAN;
    }
    let mut scored: Vec<(f64, bool)> = scores_negative
        .iter()
        .map(|&s| (s, false))
        .chain(scores_positive.iter().map(|&s| (s, true)))
        .collect();
    // total_cmp puts -0.0 just before 0.0; the `==` grouping below ties them.
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_positive = 0.0;
    let mut start = 0;
    while start < scored.len() {
        let end = start
            + scored[start..]
                .iter()
                .take_while(|(s, _)| *s == scored[start].0)
                .count();
        // Ranks start+1 ..= end share their mean.
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        let positives = scored[start..end].iter().filter(|(_, p)| *p).count();
        rank_sum_positive += mid_rank * positives as f64;
        start = end;
    }
    let (m, n) = (m as f64, n as f64);
    (rank_sum_positive - m * (m + 1.0) / 2.0) / (m * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rank formula agrees with the pairwise definition.
    #[test]
    fn auroc_equals_the_pairwise_count() {
        let neg = [0.1, 0.4, 0.4, 0.9, -0.0];
        let pos = [0.4, 1.0, 0.0, 0.35];
        let mut pairs = 0.0;
        for p in pos {
            for q in neg {
                pairs += if p > q {
                    1.0
                } else if p == q {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let want = pairs / (pos.len() * neg.len()) as f64;
        assert!((auroc(&neg, &pos) - want).abs() < 1e-15);
    }

    #[test]
    fn labels_must_be_class_indices() {
        assert_eq!(class_labels(&[0.0, 2.0, 1.0], 3).ok(), Some(vec![0, 2, 1]));
        for bad in [3.0, -1.0, 0.5, f64::NAN] {
            let e = class_labels(&[0.0, bad], 3).map_err(|e| e.to_string());
            assert!(e.is_err_and(|m| m.contains("label[1]")), "{bad}");
        }
    }
}
