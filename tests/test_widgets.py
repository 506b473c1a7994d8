"""Reading Streamlit's plotly selection events (ui/widgets.py; the figures they come from are in
vae_tf.plots and tests/test_theory.py), and what a job's progress bar says."""
from ui import widgets


def test_selected_latents_reads_click_targets_and_other_points():
    event = {"selection": {"points": [{"customdata": [0.25, -0.5], "x": 0.25, "y": -0.5}, {"x": 1.0, "y": 2.0}]}}
    assert widgets.selected_latents(event) == [(0.25, -0.5), (1.0, 2.0)]
    assert widgets.selected_latents(None) == []


def test_selected_indices_in_order_once_each():
    event = {"selection": {"points": [{"customdata": 7}, {"customdata": [2]}, {"customdata": 7}]}}
    assert widgets.selected_indices(event) == [7, 2]


def test_a_job_before_its_first_report_says_it_is_starting_not_0_of_1():
    from ui.jobs import Job

    job = Job("k", lambda j: None, label="AIS")
    assert widgets.job_text("AIS", job) == "AIS: starting…"
    job.report(3, 10)
    assert widgets.job_text("AIS", job, "image-temperatures").startswith("AIS: 3 of 10 image-temperatures (ETA ")
