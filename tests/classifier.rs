//! Integration tests of the classifier pipeline on the embedded digits: the
//! loader's shape, a small Bayes-by-Backprop classifier that learns digits
//! 0–4 and is less certain on the unseen 5–9, temperature scaling of it
//! (and of an artificially overconfident copy), an MC-dropout fit that
//! predicts reproducibly, the AUROC against hand-computed values, the
//! pipeline's input checks, and the reliability-diagram figure.

use std::sync::OnceLock;

use candle_bnn::calibrate::{apply_temperature, fit_temperature};
use candle_bnn::classifier::{
    auroc, bbb_classifier, class_labels, mc_dropout_classifier, BayesClassifier,
};
use candle_bnn::data::{digits, Dataset};
use candle_bnn::figures::plot_reliability_diagram;
use candle_bnn::metrics::{accuracy, categorical_nll, ece, reliability_diagram, ECE_BINS};
use candle_bnn::model::BayesMlpConfig;
use candle_bnn::predictive::CategoricalMixture;
use candle_bnn::train::TrainConfig;
use candle_bnn::{Error, Network, NetworkSpec, Result};
use candle_core::Device;

/// Digits `0..KNOWN` are in distribution.
const KNOWN: usize = 5;
/// Stochastic passes per prediction.
const SAMPLES: usize = 30;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Digits 0–4 split 60/20/20 into train, calibration and test (seeded), and
/// all of digits 5–9.
struct Splits {
    train: Dataset,
    cal: Dataset,
    test: Dataset,
    ood: Dataset,
}

fn splits() -> Result<Splits> {
    let all = digits();
    let (known, unknown): (Vec<usize>, Vec<usize>) =
        (0..all.len()).partition(|&i| all.y[i] < KNOWN as f64);
    let (train, held_out) = all.subset(&known).train_test_split(0.4, 0)?;
    let (cal, test) = held_out.train_test_split(0.5, 1)?;
    Ok(Splits {
        train,
        cal,
        test,
        ood: all.subset(&unknown),
    })
}

fn train_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 1e-2,
        seed: 7,
        progress: false,
        ..TrainConfig::default()
    }
}

/// The predictions of one small BBB classifier (64 -> 32 -> 5, 30 epochs),
/// trained once and shared by the tests that read them. Predictions, not the
/// model, are shared: `predict` reseeds the model's one noise stream, so two
/// threads predicting with one model at once would interleave their draws.
struct Fitted {
    test: CategoricalMixture,
    cal: CategoricalMixture,
    ood: CategoricalMixture,
    y_test: Vec<usize>,
    y_cal: Vec<usize>,
}

fn bbb() -> &'static Fitted {
    static FITTED: OnceLock<Fitted> = OnceLock::new();
    FITTED.get_or_init(|| {
        let fit = || -> Result<Fitted> {
            let s = splits()?;
            let spec = bbb_classifier(64, &[32], KNOWN);
            let clf = BayesClassifier::fit(&s.train, &spec, &train_config(30), &Device::Cpu)?;
            Ok(Fitted {
                test: clf.predict(&s.test.x, SAMPLES)?,
                cal: clf.predict(&s.cal.x, SAMPLES)?,
                ood: clf.predict(&s.ood.x, SAMPLES)?,
                y_test: class_labels(&s.test.y, KNOWN)?,
                y_cal: class_labels(&s.cal.y, KNOWN)?,
            })
        };
        fit().expect("the BBB digits classifier trains and predicts")
    })
}

#[test]
fn digits_are_1797_images_of_64_pixels_labelled_0_to_9() -> Result<()> {
    let d = digits();
    assert_eq!((d.len(), d.n_features()), (1797, 64));
    assert_eq!(d.x.len(), 1797 * 64);
    assert_eq!(d.feature_names[0], "pixel_0_0");
    assert_eq!(d.feature_names[63], "pixel_7_7");
    assert_eq!(d.target_name, "digit");
    assert!(d
        .x
        .iter()
        .all(|v| (0.0..=16.0).contains(v) && v.fract() == 0.0));
    let labels = class_labels(&d.y, 10)?;
    // Every digit appears; the set is nearly balanced (174..=183 per class).
    let mut counts = [0usize; 10];
    for k in labels {
        counts[k] += 1;
    }
    assert!(counts.iter().all(|c| (170..=190).contains(c)), "{counts:?}");
    // The checked constructor accepts it (all values finite, shapes agree).
    Dataset::new(d.x, d.y, d.feature_names, d.target_name)?;
    Ok(())
}

/// Chance is 1/5 for five balanced classes; logistic regression reaches
/// ~0.96 on all ten digits, and this net scores 0.98 on 180 test images. The
/// binomial sd of a test accuracy near 0.95 is sqrt(0.95·0.05/180) ≈ 0.016,
/// so 0.85 sits > 6 sd below a net that good, and (0.85 - 0.2) / 0.03 > 20
/// sd above chance.
///
/// Entropies lie in [0, ln 5 = 1.61], so a mean over >= 180 rows has sd
/// <= 0.8/sqrt(180) ≈ 0.06; the 0.2-nat gap asked for is > 3 such sd (it is
/// 0.44 vs 1.12 here). Under "no separation" the AUROC of 180 negatives
/// against 896 positives has sd sqrt((m + n + 1) / (12 m n)) ≈ 0.024 (Hanley
/// & McNeil 1982); 0.75 is > 10 sd above ½. It is 0.93 (entropy) and 0.89
/// (mutual information) here.
#[test]
fn bbb_learns_digits_0_to_4_and_is_less_certain_on_5_to_9() -> Result<()> {
    let f = bbb();
    let acc = accuracy(&f.test, &f.y_test)?;
    assert!(acc > 0.85, "test accuracy {acc}");
    let (h_in, h_out) = (f.test.entropy(), f.ood.entropy());
    assert!(
        mean(&h_out) > mean(&h_in) + 0.2,
        "entropy {} vs {}",
        mean(&h_in),
        mean(&h_out)
    );
    let auc_h = auroc(&h_in, &h_out);
    assert!(auc_h > 0.75, "entropy AUROC {auc_h}");
    let (mi_in, mi_out) = (f.test.mutual_information(), f.ood.mutual_information());
    let auc_mi = auroc(&mi_in, &mi_out);
    assert!(auc_mi > 0.75, "mutual information AUROC {auc_mi}");
    Ok(())
}

/// Bayes by Backprop with the full KL on 541 images is underconfident: the
/// NLL-optimal temperature is < 1 (it sharpens; 0.35 on this seed). Fitted
/// on the calibration images, it lowers test NLL (0.166 -> 0.060) and ECE
/// (0.115 -> 0.017) by a margin far beyond the ECE's sampling spread here
/// (a few hundredths with 180 rows).
///
/// Then an overconfident copy: the predictive sharpened by temperature 1/10.
/// Tempering composes (`(p^(1/a))^(1/b) ∝ p^(1/(ab))`), so the fitted
/// temperature is exactly 10× the first and the recalibrated predictive is
/// the same: temperature scaling undoes overconfidence of this kind, and the
/// NLL it optimizes drops (0.114 -> 0.060). ECE is not asserted for this
/// copy: at 98% test accuracy a fully confident predictor has ECE ≈
/// 1 - accuracy ≈ 0.017, the same size as the recalibrated one's sampling
/// error (measured 0.0167 before, 0.0170 after), so "not worse" would be a
/// coin flip. Where overconfidence is large (a synthetic classifier, n =
/// 5000), tests/calibrate.rs checks that ECE drops.
#[test]
fn temperature_scaling_recalibrates_the_bbb_classifier() -> Result<()> {
    let f = bbb();
    let t = fit_temperature(&f.cal, &f.y_cal)?;
    assert!(t < 1.0, "BBB should be underconfident, T = {t}");
    let tempered = apply_temperature(&f.test, t)?;
    let (ece0, ece1) = (
        ece(&f.test, &f.y_test, ECE_BINS)?,
        ece(&tempered, &f.y_test, ECE_BINS)?,
    );
    assert!(ece1 < ece0 / 2.0, "ECE {ece0} -> {ece1}");
    let (nll0, nll1) = (
        categorical_nll(&f.test, &f.y_test)?,
        categorical_nll(&tempered, &f.y_test)?,
    );
    assert!(nll1 < nll0, "NLL {nll0} -> {nll1}");

    let k = 10.0;
    let (sharp_cal, sharp_test) = (
        apply_temperature(&f.cal, 1.0 / k)?,
        apply_temperature(&f.test, 1.0 / k)?,
    );
    let t_sharp = fit_temperature(&sharp_cal, &f.y_cal)?;
    assert!(
        t_sharp > 1.0,
        "the sharpened copy is overconfident, T = {t_sharp}"
    );
    assert!(
        (t_sharp / (k * t) - 1.0).abs() < 1e-4,
        "{t_sharp} vs {k} x {t}"
    );
    let retempered = apply_temperature(&sharp_test, t_sharp)?;
    for i in 0..retempered.len() {
        for (a, b) in retempered.mean_probs(i).iter().zip(tempered.mean_probs(i)) {
            assert!((a - b).abs() < 1e-4, "row {i}: {a} vs {b}");
        }
    }
    let (nll_sharp, nll_back) = (
        categorical_nll(&sharp_test, &f.y_test)?,
        categorical_nll(&retempered, &f.y_test)?,
    );
    assert!(nll_back < nll_sharp, "NLL {nll_sharp} -> {nll_back}");
    Ok(())
}

/// MC dropout through the same pipeline: it learns, its predictions are
/// reproducible (the noise is reseeded per call) and depend on the seed.
#[test]
fn mc_dropout_classifier_learns_and_predicts_reproducibly() -> Result<()> {
    let s = splits()?;
    let spec = mc_dropout_classifier(64, &[32], KNOWN, 0.2);
    let clf = BayesClassifier::fit(&s.train, &spec, &train_config(20), &Device::Cpu)?;
    assert!(matches!(clf.model(), Network::McDropout(_)));
    assert!(clf.model().to_string().starts_with("McDropoutMlp"));
    assert_eq!(clf.classes(), KNOWN);
    let a = clf.predict(&s.test.x, 8)?;
    let b = clf.predict(&s.test.x, 8)?;
    assert_eq!(a, b);
    assert_ne!(a, clf.predict_with_seed(&s.test.x, 8, 1)?);
    let acc = accuracy(&a, &class_labels(&s.test.y, KNOWN)?)?;
    assert!(acc > 0.85, "test accuracy {acc}");
    Ok(())
}

/// Hand-computed: pairs (positive, negative) scoring 1 if the positive is
/// higher, ½ on a tie.
#[test]
fn auroc_matches_hand_computed_values_with_ties() {
    assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
    assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 0.0);
    assert_eq!(auroc(&[5.0, 5.0, 5.0], &[5.0, 5.0]), 0.5);
    // (0.5 vs 0.1) 1, (0.5 vs 0.5) ½, (0.9 vs 0.1) 1, (0.9 vs 0.5) 1: 3.5 / 4.
    assert_eq!(auroc(&[0.1, 0.5], &[0.5, 0.9]), 0.875);
    // Positive 2 against 1, 2, 2, 3: 1 + ½ + ½ + 0 = 2; 4 wins all 4;
    // 2.5 beats 1, 2, 2: 3. Total 9 of 12 pairs.
    let (neg, pos) = ([1.0, 2.0, 2.0, 3.0], [2.0, 4.0, 2.5]);
    assert_eq!(auroc(&neg, &pos), 0.75);
    // Swapping the roles mirrors it; -0 and 0 tie; infinities are extremes.
    assert_eq!(auroc(&pos, &neg), 0.25);
    assert_eq!(auroc(&[-0.0], &[0.0]), 0.5);
    assert_eq!(auroc(&[f64::NEG_INFINITY, 0.0], &[f64::INFINITY]), 1.0);
    assert!(auroc(&[], &[1.0]).is_nan());
    assert!(auroc(&[1.0], &[f64::NAN]).is_nan());
}

#[test]
fn the_pipeline_checks_its_inputs() -> Result<()> {
    let s = splits()?;
    let dev = Device::Cpu;
    let train = train_config(1);
    let name = |r: Result<BayesClassifier>| match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("expected an InvalidParameter error, got {other:?}"),
    };
    // A Gaussian head is not a classifier.
    let gaussian = NetworkSpec::Bbb(BayesMlpConfig::new(64, &[8]));
    assert_eq!(
        name(BayesClassifier::fit(&s.train, &gaussian, &train, &dev)),
        "likelihood"
    );
    // Wrong input width.
    let narrow = bbb_classifier(63, &[8], KNOWN);
    assert_eq!(
        name(BayesClassifier::fit(&s.train, &narrow, &train, &dev)),
        "input_dim"
    );
    // Labels 5..9 do not fit a 5-class head; the error names the row.
    let five = bbb_classifier(64, &[8], KNOWN);
    let label = name(BayesClassifier::fit(&s.ood, &five, &train, &dev));
    assert!(label.starts_with("label["), "{label}");
    // Bad dropout is the architecture's own check.
    let dropout = mc_dropout_classifier(64, &[8], KNOWN, 1.0);
    assert_eq!(
        name(BayesClassifier::fit(&s.train, &dropout, &train, &dev)),
        "dropout"
    );

    let clf = BayesClassifier::fit(&s.train, &five, &train, &dev)?;
    assert!(matches!(
        clf.predict(&[0.0; 65], 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        clf.predict(&s.test.x, 0),
        Err(Error::InvalidParameter { .. })
    ));
    let mut nan_row = s.test.row(0).to_vec();
    nan_row[3] = f64::NAN;
    assert!(matches!(
        clf.predict(&nan_row, 2),
        Err(Error::InvalidParameter { .. })
    ));
    Ok(())
}

/// The diagram of the shared BBB predictive is a PNG; bins outside the unit
/// square are refused with the field named.
#[test]
fn reliability_diagram_is_drawn_and_checked() -> Result<()> {
    let f = bbb();
    let bins = reliability_diagram(&f.test, &f.y_test, ECE_BINS)?;
    let dir = tempfile::tempdir().map_err(|source| Error::Io {
        path: "tempdir".into(),
        source,
    })?;
    let path = dir.path().join("nested/reliability.png");
    plot_reliability_diagram(&path, "BBB", &bins, ece(&f.test, &f.y_test, ECE_BINS)?)?;
    let png = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    assert!(png.starts_with(b"\x89PNG"));
    let mut bad = bins.clone();
    bad[3].accuracy = 1.5;
    let e = plot_reliability_diagram(&path, "", &bad, 0.1).map_err(|e| e.to_string());
    assert!(e.is_err_and(|m| m.contains("bins[3].accuracy")));
    assert!(plot_reliability_diagram(&path, "", &[], 0.1).is_err());
    assert!(plot_reliability_diagram(&path, "", &bins, f64::NAN).is_err());
    Ok(())
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BayesClassifier>();
    check::<NetworkSpec>();
    check::<Network>();
}
