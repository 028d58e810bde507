#!/usr/bin/env python3
"""Writes test/fixtures/golden-schedulers: diffusers' PNDM, EulerDiscrete and DPMSolverMultistep
schedulers stepped on seeded inputs, in the ../shared/golden format (manifest.json + safetensors;
see scripts/golden/handlers/schedulers.ts for the tensors of a case).

Needs torch, numpy, safetensors and diffusers' scheduler modules (diffusers.schedulers.scheduling_*):
    python3 scripts/golden/make_scheduler_fixtures.py [out_dir]
The stored fixtures were made with diffusers at commit 58eb52c0803ea9af3abec60841c2a093bdf1f951 (the
commit ../shared/golden was made with) and torch 2.13.0+cpu.
"""
import hashlib
import json
import os
import sys

import torch
from safetensors.torch import save_file
from diffusers.schedulers.scheduling_pndm import PNDMScheduler
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'golden-schedulers')
SD15 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear', steps_offset=1)
SHAPE = (1, 4, 8, 8)

# (name, class, explicit config, inference steps)
CASES = [
    ('pndm_sd15cfg_5steps', PNDMScheduler, dict(SD15, skip_prk_steps=True, set_alpha_to_one=False), 5),
    ('pndm_linspace_vpred_4steps', PNDMScheduler, dict(SD15, skip_prk_steps=True, set_alpha_to_one=True, timestep_spacing='linspace', prediction_type='v_prediction', steps_offset=0), 4),
    ('pndm_trailing_7steps', PNDMScheduler, dict(SD15, skip_prk_steps=True, set_alpha_to_one=False, timestep_spacing='trailing', steps_offset=0), 7),
    ('euler_sd15cfg_5steps', EulerDiscreteScheduler, dict(SD15, timestep_spacing='leading'), 5),
    ('euler_linspace_5steps', EulerDiscreteScheduler, dict(SD15, steps_offset=0), 5),
    ('euler_trailing_vpred_4steps', EulerDiscreteScheduler, dict(SD15, timestep_spacing='trailing', prediction_type='v_prediction', steps_offset=0), 4),
    ('dpm_sd15cfg_6steps', DPMSolverMultistepScheduler, dict(SD15, steps_offset=0), 6),
    ('dpm_leading_vpred_5steps', DPMSolverMultistepScheduler, dict(SD15, timestep_spacing='leading', prediction_type='v_prediction'), 5),
    ('dpm_trailing_16steps', DPMSolverMultistepScheduler, dict(SD15, timestep_spacing='trailing', steps_offset=0), 16),
]


def seed_of(name):
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for name, cls, config, n in CASES:
        g = torch.Generator().manual_seed(seed_of(name))
        s = cls(**config)
        s.set_timesteps(n)
        t = {'alphas_cumprod': s.alphas_cumprod.float().contiguous(), 'timesteps': s.timesteps.clone().contiguous()}
        if hasattr(s, 'sigmas'):
            t['sigmas'] = s.sigmas.float().contiguous()
        x = torch.randn(SHAPE, generator=g) * float(s.init_noise_sigma)
        t['sample0'] = x.clone()
        for i, ts in enumerate(s.timesteps):
            eps = torch.randn(SHAPE, generator=g)
            t[f'model_output{i}'] = eps
            if isinstance(s, EulerDiscreteScheduler):
                t[f'scaled_sample{i}'] = s.scale_model_input(x, ts).clone()
            r = s.step(eps, ts, x, return_dict=True)
            t[f'prev_sample{i}'] = r.prev_sample.clone()
            if getattr(r, 'pred_original_sample', None) is not None:
                t[f'pred_original_sample{i}'] = r.pred_original_sample.clone()
            x = r.prev_sample
        t = {k: v.contiguous() for k, v in t.items()}
        fname = f'schedulers/{name}.safetensors'
        os.makedirs(os.path.join(OUT, 'schedulers'), exist_ok=True)
        save_file(t, os.path.join(OUT, fname))
        cases.append({
            'group': 'schedulers', 'name': name, 'op': f'{cls.__name__}.step', 'file': fname,
            'attrs': {'config': config, 'num_inference_steps': n, 'init_noise_sigma': float(s.init_noise_sigma)},
            'tensors': {k: {'shape': list(v.shape), 'dtype': 'I64' if v.dtype == torch.int64 else 'F32'} for k, v in t.items()},
        })
    manifest = {
        'format': {'tensors': 'safetensors, F32 (float32) or I64 (int64), little-endian', 'made_by': 'scripts/golden/make_scheduler_fixtures.py'},
        'generator': {'torch': torch.__version__, 'diffusers_commit': '58eb52c0803ea9af3abec60841c2a093bdf1f951'},
        'cases': cases,
    }
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    print(f'{len(cases)} cases written to {OUT}')


if __name__ == '__main__':
    main()
