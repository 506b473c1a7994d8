"""vae_tf.latent (paths, PCA), data's image pickers, and vae_tf.plots (figures carry the data they are given)."""
import numpy as np
import pytest

from vae_tf import data, latent, plots


# -- latent paths ----------------------------------------------------------------------------
def test_lerp_endpoints_and_midpoint():
    z0, z1 = np.array([1.0, -2.0, 3.0]), np.array([3.0, 2.0, -1.0])
    p = latent.lerp(z0, z1, 5)
    assert p.shape == (5, 3)
    np.testing.assert_allclose(p[0], z0)
    np.testing.assert_allclose(p[-1], z1)
    np.testing.assert_allclose(p[2], (z0 + z1) / 2)
    np.testing.assert_allclose(np.diff(p, axis=0), np.tile((z1 - z0) / 4, (4, 1)))  # even steps


def test_slerp_endpoints_and_constant_norm_for_equal_lengths():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=20), rng.normal(size=20)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    p = latent.slerp(z0, z1, 9)
    np.testing.assert_allclose(p[0], z0, atol=1e-12)
    np.testing.assert_allclose(p[-1], z1, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), np.linalg.norm(z0), rtol=1e-10)
    # lerp's midpoint is shorter than the ends; slerp's is not
    assert np.linalg.norm(latent.lerp(z0, z1, 9)[4]) < 0.95 * np.linalg.norm(z0)


def test_slerp_turns_at_a_constant_angular_speed_along_the_great_circle():
    z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    p = latent.slerp(z0, z1, 3)
    np.testing.assert_allclose(p[1], [np.sqrt(0.5), np.sqrt(0.5)])
    angles = np.arctan2(latent.slerp(z0, z1, 7)[:, 1], latent.slerp(z0, z1, 7)[:, 0])
    np.testing.assert_allclose(np.diff(angles), np.pi / 2 / 6)


def test_slerp_length_moves_linearly_between_unequal_ends():
    rng = np.random.default_rng(1)
    for _ in range(200):
        z0, z1 = rng.normal(size=6) * rng.uniform(0.1, 5), rng.normal(size=6) * rng.uniform(0.1, 5)
        norms = np.linalg.norm(latent.slerp(z0, z1, 11), axis=1)
        np.testing.assert_allclose(norms, np.linspace(np.linalg.norm(z0), np.linalg.norm(z1), 11), rtol=1e-9)


def test_slerp_falls_back_to_lerp_for_parallel_and_opposite_codes():
    z0 = np.array([1.0, 2.0])
    np.testing.assert_allclose(latent.slerp(z0, 3 * z0, 5), latent.lerp(z0, 3 * z0, 5))
    np.testing.assert_allclose(latent.slerp(z0, -z0, 5), latent.lerp(z0, -z0, 5))
    assert np.all(np.isfinite(latent.slerp(np.zeros(2), z0, 4)))


def test_path_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        latent.lerp([0, 1], [1, 0], 1)
    with pytest.raises(ValueError, match="differ in size"):
        latent.slerp([0, 1], [1, 0, 0], 3)
    with pytest.raises(ValueError, match="kind"):
        latent.path([0, 1], [1, 0], 3, "cubic")
    np.testing.assert_allclose(latent.path([0, 1], [1, 0], 3, "linear")[1], [0.5, 0.5])


# -- PCA --------------------------------------------------------------------------------------
def test_pca_recovers_known_axes_and_variances():
    rng = np.random.default_rng(0)
    # variances 9, 1, 0.01 along a rotated basis, plus an offset
    basis, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    coords = rng.normal(size=(20000, 3)) * np.array([3.0, 1.0, 0.1])
    z = coords @ basis.T + np.array([5.0, -2.0, 1.0])
    proj = latent.pca(z)
    for i in range(2):  # each found axis is ± the true one
        assert abs(abs(proj.components[i] @ basis[:, i]) - 1) < 1e-3
    np.testing.assert_allclose(proj.explained, np.array([9, 1]) / 10.01, rtol=0.03)
    np.testing.assert_allclose(proj.mean, [5, -2, 1], atol=0.05)
    xy = proj(z)
    np.testing.assert_allclose(xy.std(0), [3, 1], rtol=0.03)
    np.testing.assert_allclose(proj.components @ proj.components.T, np.eye(2), atol=1e-10)
    # deterministic signs: the largest loading of each axis is positive
    assert all(c[np.abs(c).argmax()] > 0 for c in proj.components)
    assert "PC1" in proj.axis_titles[0]


def test_projection_2d_is_the_identity_for_a_2d_latent_and_refuses_1d():
    z = np.random.default_rng(0).normal(size=(50, 2)) + 3
    proj = latent.projection_2d(z)
    assert proj.method == "identity"
    np.testing.assert_allclose(proj(z), z)
    assert latent.projection_2d(np.random.default_rng(0).normal(size=(50, 5))).method == "pca"
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        latent.projection_2d(z[:, :1])


def test_manifold_codes_sit_at_prior_quantiles_along_the_latent_or_its_principal_axes():
    from statistics import NormalDist

    u, center, axes = latent.manifold_codes(latent.projection_2d(np.zeros((4, 2))), np.zeros((4, 2)), 5)
    np.testing.assert_allclose(u, [NormalDist().inv_cdf(p) for p in (0.05, 0.275, 0.5, 0.725, 0.95)], atol=1e-12)
    assert u[2] == pytest.approx(0, abs=1e-12) and center == (0.0, 0.0) and axes == ((1.0, 0.0), (0.0, 1.0))
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 3)) * [3.0, 1.0, 0.1] + [1.0, 2.0, 3.0]  # principal axes e1, e2; spreads 3 and 1
    proj = latent.projection_2d(z)
    u, center, axes = latent.manifold_codes(proj, proj(z), 7)
    assert len(u) == 7
    np.testing.assert_allclose(center, z.mean(0))
    np.testing.assert_allclose(np.abs(axes), [[3, 0, 0], [0, 1, 0]], atol=0.1)  # each axis times its spread


# -- picking images ----------------------------------------------------------------------------
def test_picking_images():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    a = data.pick_random(10, 4, seed=3)
    assert len(set(a)) == 4 and np.array_equal(a, data.pick_random(10, 4, seed=3))
    only = data.pick_random(10, 10, seed=0, labels=labels, classes=[2])
    assert sorted(only) == [2, 5, 8]
    by = data.pick_by_class(labels, [2, 0], per_class=2, seed=0)
    assert list(labels[by]) == [2, 2, 0, 0]
    assert labels[data.pick_one(labels, 1, seed=5)] == 1
    with pytest.raises(ValueError):
        data.pick_one(labels, 7, seed=0)


# -- figures ------------------------------------------------------------------------------------
def test_image_grid_holds_every_image_and_title():
    imgs = np.random.default_rng(0).random((5, 4, 4))
    fig = plots.image_grid(imgs, titles=[f"img {i}" for i in range(5)], ncols=3)
    assert [t.type for t in fig.data] == ["image"]  # one picture, not a heatmap per image
    shown = plots.grid_images(fig)
    assert shown.shape == (5, 4, 4)
    np.testing.assert_allclose(shown, imgs, atol=0.5 / 255 + 1e-9)  # 8-bit grey levels
    assert [a.text for a in fig.layout.annotations] == [f"img {i}" for i in range(5)]
    # each title sits centred over its own image: the cells of one row share a top, the next row is lower
    cells = fig.layout.meta["cells"]
    for a, (y0, x0, _, w) in zip(fig.layout.annotations, cells, strict=True):
        assert (a.x, a.y, a.yanchor) == (x0 + (w - 1) / 2, y0 - 0.5, "bottom")
    assert cells[0][0] == cells[2][0] < cells[3][0] and cells[3][1] == cells[0][1]
    flat = plots.image_grid(imgs.reshape(5, 16))  # flat pixels: the square shape is inferred
    np.testing.assert_allclose(plots.grid_images(flat)[2], imgs[2], atol=0.5 / 255 + 1e-9)
    assert not flat.layout.annotations


def test_reconstruction_grid_puts_each_reconstruction_under_its_image():
    x = np.random.default_rng(0).random((3, 4, 4))
    r = 1 - x
    fig = plots.reconstruction_grid(x, r, ["a", "b", "c"], ["ra", "rb", "rc"], ncols=2)
    z = plots.grid_images(fig)
    # rows: x0 x1 / r0 r1 / x2 pad / r2 pad
    np.testing.assert_allclose(z[0], x[0], atol=0.5 / 255 + 1e-9)
    np.testing.assert_allclose(z[2], r[0], atol=0.5 / 255 + 1e-9)
    np.testing.assert_allclose(z[4], x[2], atol=0.5 / 255 + 1e-9)
    np.testing.assert_allclose(z[6], r[2], atol=0.5 / 255 + 1e-9)
    assert (z[5] == 1).all()  # the empty cell beside the last image is white
    assert [a.text for a in fig.layout.annotations][:4] == ["a", "b", "ra", "rb"]


def test_training_curves_show_steps_and_test_epochs():
    steps = np.array([[s, -300 + s, -280 + s, 20 - s / 10] for s in range(1, 101)], float)
    epochs = [{"epoch": 1, "test_elbo": -240.0, "test_recon": -225.0, "test_kl": 15.0},
              {"epoch": 2, "test_elbo": -230.0, "test_recon": -216.0, "test_kl": 14.0}]
    fig = plots.training_curves(steps, steps_per_epoch=50, epochs=epochs)
    raw = [t for t in fig.data if t.name == "train, per step"]
    np.testing.assert_allclose(raw[0].x, steps[:, 0] / 50)
    np.testing.assert_allclose(raw[2].y, steps[:, 3])
    test = [t for t in fig.data if t.name == "test set, per epoch"]
    assert list(test[0].y) == [-240.0, -230.0] and list(test[2].y) == [15.0, 14.0]


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(plots.smooth([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(plots.smooth([1, 2, 3], 1), [1, 2, 3])


def test_latent_map_and_1d_axis():
    pts = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.repeat([0, 1, 2], 10)
    path = np.linspace([0, 0], [1, 1], 5)
    fig = plots.latent_map(pts, labels, ("a", "b", "c"), paths={"linear": path}, endpoints=path[[0, -1]])
    by_name = {t.name: t for t in fig.data}
    np.testing.assert_allclose(by_name["b"].x, pts[10:20, 0])
    np.testing.assert_allclose(by_name["linear path"].y, path[:, 1])
    fig1 = plots.latent_axis_1d(pts[:, 0], labels, ("a", "b", "c"), paths={"spherical": path[:, 0]})
    np.testing.assert_allclose([t for t in fig1.data if t.name == "spherical path"][0].x, path[:, 0])
    assert sum(len(t.x) for t in fig1.data if t.mode == "markers") == 30


def test_a_latent_map_of_a_thousand_classes_is_one_trace_coloured_by_class():
    """A trace and a legend entry per class froze the browser for a minute with 1,000 classes."""
    rng = np.random.default_rng(0)
    pts, labels = rng.normal(size=(5000, 2)), rng.integers(0, 1000, 5000)
    fig = plots.latent_map(pts, labels)
    assert len(fig.data) == 1 and fig.data[0].name == f"{len(np.unique(labels))} classes"
    np.testing.assert_array_equal(fig.data[0].marker.color, labels)
    np.testing.assert_allclose(fig.data[0].x, pts[:, 0])
    assert len(plots.latent_map(pts[:100], labels[:100] % 20).data) == 20  # up to 20: one each, in the legend


def test_logpx_figures():
    rng = np.random.default_rng(0)
    log_px = rng.normal(-250, 20, 40)
    elbo = log_px - rng.uniform(0, 5, 40)
    fig = plots.elbo_vs_logpx(log_px, elbo, exact=log_px + 0.1, grid=([0, 3], [-240.0, -251.0]))
    by = {t.name.split(" ")[0]: t for t in fig.data}
    np.testing.assert_allclose(by["importance"].x, log_px)
    np.testing.assert_allclose(by["importance"].y, elbo)
    np.testing.assert_allclose(by["grid"].y, elbo[[0, 3]])
    line = by["y"]
    assert line.x[0] == line.y[0] and line.x[1] == line.y[1] and line.x[0] <= elbo.min()
    hist = plots.gap_histogram(log_px - elbo)
    np.testing.assert_allclose(hist.data[0].x, log_px - elbo)
    ks = [1, 2, 5, 10]
    curve = plots.iwae_curve(ks, [-260, -258, -257, -256.5], [0.5, 0.4, 0.3, 0.2], elbo_mean=-260,
                             log_px_mean=-256.4, exact_mean=-256.0)
    assert curve.layout.xaxis.type == "log"
    assert list(curve.data[0].x) == ks and list(curve.data[0].error_y.array) == [0.5, 0.4, 0.3, 0.2]
    assert [t.name for t in curve.data][1:] == ["ELBO (analytic KL)", "log p̂(x), K = 10", "exact log p(x)"]


def test_training_curves_keep_their_range_when_a_few_steps_are_wild():
    """A learning rate far too high: a few steps at ±3·10⁷ must not flatten the rest into a line."""
    from vae_tf import plots

    steps = np.column_stack([np.arange(1, 1001), np.linspace(-600, -250, 1000), np.linspace(-500, -240, 1000),
                             np.linspace(5, 10, 1000)])
    steps[:10, 1] = -3e7
    steps[500, 1] = 3e7
    lo, hi = plots.training_curves(steps, 100, []).layout.yaxis.range
    assert -700 < lo < -550 and -260 < hi < -200


def test_a_label_that_rounds_to_zero_has_no_sign():
    from vae_tf.plots.style import fmt

    assert (fmt(-0.001), fmt(-0.006), fmt(0.0), fmt(-1.234, 1)) == ("0.00", "-0.01", "0.00", "-1.2")
    fig = plots.gap_histogram(np.array([-0.002, 0.001, 0.0005]))
    assert [a.text for a in fig.layout.annotations] == ["mean 0.00 nats"]


def test_a_scatter_is_svg_up_to_svg_points_and_webgl_beyond():
    from vae_tf.plots.style import SVG_POINTS

    for n, kind in ((SVG_POINTS, "scatter"), (SVG_POINTS + 1, "scattergl")):
        assert plots.latent_map(np.zeros((n, 2)), None).data[0].type == kind
        assert plots.latent_points(np.zeros((n, 2)), None).data[0].type == kind
        assert plots.elbo_vs_logpx(np.zeros(n), np.zeros(n)).data[0].type == kind
