"""The audit: is the imagination real?

* :mod:`.world_states` — the world's true state at the frame a span stands for (probe targets);
* :mod:`.decode` — greedy decoding of the test items, keeping latents, replayed states and reasoning states;
* :mod:`.interventions` — what the ablations feed instead of the model's latents;
* :mod:`.ablations` — accuracy under each ablation, by kind group and hop, with paired Δs and CIs;
* :mod:`.probes` — clip-grouped cross-validated linear probes from span vectors to world states;
* :mod:`.frame_reading` — frame-needing scores split into reading the frame and following the reading;
* :mod:`.run` — :func:`run_audit`, what notebook ``07_audit`` calls.
"""

from .ablations import CONDITIONS, ablation_rows, dependence_statement, run_ablations
from .decode import AuditItem, decode_items, load_audit_items
from .frame_reading import read_frame, reading_decomposition, reading_rows
from .interventions import ABLATIONS
from .probes import fit_probe, probe_table
from .run import require_latent_checkpoint, run_audit
from .world_states import STATE_TARGETS, has_world_states, read_clips, span_frames, state_at

__all__ = [
    "ABLATIONS", "CONDITIONS", "STATE_TARGETS", "AuditItem", "ablation_rows", "dependence_statement", "decode_items", "fit_probe",
    "has_world_states", "load_audit_items", "probe_table", "read_clips", "read_frame", "reading_decomposition", "reading_rows",
    "require_latent_checkpoint", "run_ablations",
    "run_audit", "span_frames", "state_at",
]
