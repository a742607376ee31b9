//! Candidate boxes and greedy non-maximum suppression, shared by every detector.

/// A decoded box before suppression: corners in pixels of the input image, not yet clipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub corners: [f32; 4],
    pub score: f32,
    pub landmarks: Option<[[f32; 2]; 5]>,
}

/// At most this many candidates, the best, enter NMS. OpenCV's `FaceDetectorYN` uses the same
/// default `top_k`; it bounds the quadratic suppression when a caller sets a threshold near 0,
/// where every anchor (8,400 at 640x640) becomes a candidate.
pub(crate) const MAX_CANDIDATES: usize = 5000;

/// Intersection over union of two corner-form boxes; 0 for empty boxes.
pub(crate) fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Hard NMS as both upstream references do it (UltraFace's `hard_nms`, OpenCV's `NMSBoxes`): best
/// score first, dropping every later box whose IoU with a kept one exceeds `iou_threshold`.
pub(crate) fn nms(mut candidates: Vec<Candidate>, iou_threshold: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(MAX_CANDIDATES);
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        if kept
            .iter()
            .all(|k| iou(&k.corners, &c.corners) <= iou_threshold)
        {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(corners: [f32; 4], score: f32) -> Candidate {
        Candidate {
            corners,
            score,
            landmarks: None,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        // Half overlap: 50 / 150.
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_each_cluster() {
        let kept = nms(
            vec![
                cand([0.0, 0.0, 10.0, 10.0], 0.8),
                cand([1.0, 1.0, 11.0, 11.0], 0.9),
                cand([50.0, 50.0, 60.0, 60.0], 0.75),
                // Overlaps the first cluster by IoU 1/3: kept at threshold 0.4, not at 0.3.
                cand([6.0, 1.0, 16.0, 11.0], 0.7),
            ],
            0.4,
        );
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, [0.9, 0.75, 0.7]);
        assert_eq!(nms(Vec::new(), 0.3), Vec::new());
    }
}
