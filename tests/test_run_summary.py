"""The one home of the run summary: the headline metrics have one schema and round-trip through the run folder."""

from __future__ import annotations

from fl1_core.run_summary import headline_metrics, read_run_summary, write_run_summary


def test_headline_metrics_schema_and_round_trip(tmp_path):
    fb = {"latent SFT": {"scores": {"strict": {"overall": 40.0, "table": {"1-hop": 50.0, "AVG": 40.0}},
                                    "faithful": {"overall": 42.5}}},
          "base": {"scores": {"strict": {"overall": 25.0, "table": {"1-hop": 20.0}}, "faithful": {"overall": 25.0}}}}
    tw = {"latent SFT": {"scores": {"cot": 2.0, "answer": 3.0, "avg": 2.5}}}
    head = headline_metrics(fb, tw)
    assert head["latent SFT"] == {"futurebench_strict": 40.0, "futurebench_faithful": 42.5, "hop:1-hop": 50.0,
                                  "hop:AVG": 40.0, "twiff_cot": 2.0, "twiff_answer": 3.0, "twiff_avg": 2.5}
    assert "twiff_avg" not in head["base"]
    assert read_run_summary(tmp_path) is None
    write_run_summary(tmp_path / "metrics", head)
    assert read_run_summary(tmp_path) == head
