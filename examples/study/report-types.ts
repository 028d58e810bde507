/**
 * The study's report: one JSON object (report.json) from which report.md and the self-contained
 * report.html are rendered. Keys are snake_case because the file is read by people and other tools.
 */

/** A figure over seeds: mean, 95% t-interval (null with fewer than two defined values), per-seed values. */
export interface Stat {
  mean: number | null;
  ci95: [number, number] | null;
  per_seed: (number | null)[];
}

/** Per-class metric names, and the overall ones. */
export type ClassMetricName = 'recall' | 'precision' | 'f1' | 'auc';
export type OverallMetricName = 'balanced_accuracy' | 'mean_auc';

/** metrics.<class>.<recall|precision|f1|auc> and metrics.overall.<balanced_accuracy|mean_auc>. */
export type ArmMetrics = Record<string, Partial<Record<ClassMetricName | OverallMetricName, Stat>>>;

export interface ArmReport {
  /** baseline, oversample, class_weight, control, dreambooth, dreambooth_no_prior, dreambooth_filtered, … */
  name: string;
  /** One sentence: what this arm adds to the baseline. */
  description: string;
  seeds: number[];
  metrics: ArmMetrics;
  /** Paired per-seed differences (arm − baseline), same layout as `metrics`. */
  diff_vs_baseline: ArmMetrics;
  /** Paired per-seed differences (arm − control); absent for arms without a control run. */
  diff_vs_control?: ArmMetrics;
  /** Confusion matrix summed over seeds: [true][predicted]. */
  confusion: number[][];
  /** Extra training images this arm added per seed (e.g. 400 synthetic), and of which class. */
  extra_images?: { class_name: string; per_seed: number[] };
  /** Path (relative to the report) of the per-image test predictions of each seed. */
  predictions: Record<string, string>;
}

/** One generator or verification gate, as a number the pipeline computed. */
export interface GateEntry {
  /** vae | base_model | dreambooth | dreambooth_no_prior | verification | … */
  stage: string;
  /** e.g. 'recon_accuracy_drop.rust', 'conditioning_score', 'rare_share', 'nn_feature_distance' */
  name: string;
  seed: number;
  value: number | null;
  /** The target, when there is one, and whether it was met. */
  target?: { op: '>=' | '<=' | '<'; value: number };
  passed?: boolean;
  /** How it was computed, in words (e.g. 'mean nearest-neighbour L2 distance of ResNet avgpool features'). */
  detail?: string;
}

/** One drift measurement: a prompt's samples before vs after fine-tuning, same seeds. */
export interface DriftEntry {
  seed: number;
  /** The fine-tuned model: 'dreambooth' (with prior preservation) or 'dreambooth_no_prior'. */
  variant: string;
  prompt: string;
  /** in_domain: share classified as the prompted class before/after, share now called the rare class; probe: feature distance. */
  kind: 'in_domain' | 'probe';
  samples: number;
  /** in_domain: share assigned to the prompted class before / after. */
  prompted_share_before?: number | null;
  prompted_share_after?: number | null;
  /** in_domain: share assigned to the rare class before / after. */
  rare_share_before?: number | null;
  rare_share_after?: number | null;
  /** probe: mean feature distance between base and fine-tuned samples of the same seed. */
  feature_distance?: number | null;
  /** probe: the same distance between two different seeds of the base model (the scale to read it against). */
  reference_distance?: number | null;
}

export interface ReportImage {
  /** Path relative to the report's folder (PNG). */
  path: string;
  caption: string;
  /** Section it belongs to: data | gates | verification | drift | arms | training. */
  section: string;
}

export interface StageTiming {
  stage: string;
  seed: number | null;
  seconds: number;
  /** Reused from the cache (seconds then is what it took originally). */
  cached: boolean;
}

export interface StudyReport {
  title: string;
  /** smoke | quick | full */
  profile: string;
  created: string;
  /** WebGPU adapter / backend description. */
  adapter: string;
  rare_class: string;
  class_names: string[];
  seeds: number[];
  /** Fine-tuning method of the DreamBooth arms (full, lora, …). */
  method: string;
  /** Where the images came from, and what each stage saw. */
  data: {
    source: string;
    /** Deduplication by decoded-pixel hash. */
    dedup: { images: number; unique: number; duplicate_groups: number; conflicting_groups: number; removed: number };
    /** Split sizes per seed: class -> count. */
    splits: Record<string, { train: Record<string, number>; val: Record<string, number>; test: Record<string, number> }>;
    /** What the VAE / base model / DreamBooth trained on, in words. */
    generator_data: string;
  };
  arms: ArmReport[];
  gates: GateEntry[];
  drift: DriftEntry[];
  /** DreamBooth's instance image ids per seed (all inside that seed's training split). */
  instance_ids: Record<string, string[]>;
  verification: {
    /** Per seed: share of synthetic images accepted by the filter, and the threshold fixed on validation. */
    per_seed: { seed: number; scored: number; accepted: number; threshold: number; mean_rare_probability: number }[];
    detail: string;
  };
  images: ReportImage[];
  timings: StageTiming[];
  /** The resolved configuration of every stage. */
  config: Record<string, unknown>;
  /** Plain-language conclusions, negative ones included. */
  findings: string[];
}
