"""The third family of degradation generators, for the frozen second OOD benchmark only.

FROZEN: these functions, their constants and the seeds in `build.py` were committed before
any restorer was evaluated on the set ("Frozen second OOD benchmark ..."); never change them.
They deliberately import nothing from `gendeg` (only numpy and scipy), so later work on the
project's own generators or helpers cannot move this benchmark.

Each generator is `apply(clean, rng, severity) -> degraded`: float32 HxWx3 in [0, 1] in and
out, severity in [0, 1], every random quantity drawn from `rng` before severity is used.
They differ in kind from the training generators (src/gendeg/degradations/{haze,rain,snow,
motion_blur,low_light,raindrop}.py) and the first OOD set (ood_*.py); docs/ood-photos.md
spells out how.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve as nd_convolve
from scipy.ndimage import map_coordinates
from scipy.signal import fftconvolve

# ----------------------------------------------------------------------------- helpers


def _check(clean: np.ndarray, severity: float, where: str) -> np.ndarray:
    clean = np.asarray(clean, dtype=np.float32)
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"{where}: expected an HxWx3 image, got shape {clean.shape}")
    if not 0.0 <= float(severity) <= 1.0:
        raise ValueError(f"{where}: severity must lie in [0, 1], got {severity}")
    return clean


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size convolution of an HxW or HxWxC image, reflect padding (FFT)."""
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    pads = [(pad_y, pad_y), (pad_x, pad_x)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pads, mode="reflect" if min(image.shape[:2]) > max(pad_y, pad_x) else "edge")
    kernel = kernel if image.ndim == 2 else kernel[..., None]
    return fftconvolve(padded, kernel, mode="valid", axes=(0, 1)).astype(np.float32)


def _splat_points(ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear splat of weighted points (pixel coordinates) onto an HxW grid; points off the grid drop out."""
    height, width = shape
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    fy, fx = ys - y0, xs - x0
    grid = np.zeros(height * width, np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            ok = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
            grid += np.bincount(yy[ok] * width + xx[ok], weights=(weights * wy * wx)[ok], minlength=height * width)
    return grid.reshape(height, width).astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    """Anti-aliased pillbox (the thin-lens circle of confusion), unit sum; radius <= 0.5 gives a point."""
    radius = max(float(radius), 0.5)
    half = int(np.ceil(radius)) + 1
    sub = (np.arange(4) + 0.5) / 4 - 0.5  # 4x4 supersampling per pixel
    grid = np.arange(-half, half + 1, dtype=np.float64)
    yy = (grid[:, None, None, None] + sub[None, None, :, None]) ** 2
    xx = (grid[None, :, None, None] + sub[None, None, None, :]) ** 2
    kernel = (yy + xx <= radius ** 2).mean(axis=(2, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def _line(length: float, angle: float) -> np.ndarray:
    """Straight box-weighted segment of `length` pixels at `angle` radians from vertical, unit sum."""
    length = max(float(length), 0.0)
    size = int(np.ceil(length)) // 2 * 2 + 3
    t = np.linspace(-0.5, 0.5, max(int(np.ceil(length * 4)), 2)) * length
    c = (size - 1) / 2.0
    kernel = _splat_points(c + t * np.cos(angle), c + t * np.sin(angle), np.ones_like(t), (size, size))
    return kernel / kernel.sum()


def _luminance(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.2126, 0.7152, 0.0722], np.float32)


# ----------------------------------------------------------------------------- haze


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Toroidal diamond-square fractal (Fournier, Fussell & Carpenter 1982) in [0, 1], size a power of 2.

    Each halving of the step first sets square centres to their corners' mean plus noise,
    then edge midpoints (diamonds) to their four neighbours' mean plus noise; the noise
    amplitude divides by `decay` per level, so a larger decay gives a smoother field.
    """
    if size < 2 or size & (size - 1):
        raise ValueError(f"plasma_fractal: size must be a power of two >= 2, got {size}")
    field = np.zeros((size, size), np.float64)
    step, amplitude = size, 100.0
    while step >= 2:
        half = step // 2
        corners = field[::step, ::step]
        centre_mean = (corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1)
                       + np.roll(np.roll(corners, -1, 0), -1, 1)) / 4.0
        field[half::step, half::step] = centre_mean + rng.uniform(-amplitude, amplitude, centre_mean.shape)
        around = (np.roll(field, half, 0) + np.roll(field, -half, 0) + np.roll(field, half, 1)
                  + np.roll(field, -half, 1)) / 4.0
        for rows, cols in ((slice(0, None, step), slice(half, None, step)),
                           (slice(half, None, step), slice(0, None, step))):
            field[rows, cols] = around[rows, cols] + rng.uniform(-amplitude, amplitude, around[rows, cols].shape)
        step //= 2
        amplitude /= decay
    field -= field.min()
    return (field / max(field.max(), 1e-12)).astype(np.float32)


FOG = {"strength_max": 1.6, "decay": (1.7, 2.2)}


def fog(clean: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Fog as ImageNet-C makes it (Hendrycks & Dietterich 2019, "fog"): additive plasma fractal.

        I = (J + c F) * max(J) / (max(J) + c)

    F is a diamond-square plasma fractal in [0, 1] (grey, the same in every channel) and c
    its strength (severity x `strength_max`; ImageNet-C uses 1.5 .. 3 at 224 px); the
    rescaling keeps the brightest value and compresses contrast.  No depth, no transmission
    map, no airlight colour: fog is a fractal veil, not the scattering model of the training
    or first OOD haze.  The fractal's roughness (decay) is drawn per image.
    """
    clean = _check(clean, severity, "fog")
    height, width, _ = clean.shape
    decay = rng.uniform(*FOG["decay"])
    size = 1 << int(np.ceil(np.log2(max(height, width, 2))))
    plasma = plasma_fractal(size, decay, rng)
    top, left = rng.integers(0, size - height + 1), rng.integers(0, size - width + 1)
    veil = plasma[top:top + height, left:left + width, None]
    strength = FOG["strength_max"] * severity
    peak = float(clean.max())
    return _finish((clean + strength * veil) * peak / (peak + strength))


# ----------------------------------------------------------------------------- rain

RAIN = {
    "density": 1000.0,  # drops per cubic metre at severity 1 (each kept if u < severity)
    "depth": (0.3, 4.0),  # metres; density uniform in the view frustum; farther rain is the veil
    "rain_rate": (5.0, 60.0),  # mm/h, sets the Marshall-Palmer drop-size distribution
    "exposure": (1 / 125, 1 / 30),  # s
    "focal": 1.2,  # focal length in units of the shorter side (about 45 degrees across)
    "aperture": 0.006,  # m, lens aperture diameter (circle of confusion)
    "focus": 8.0,  # m, focus distance
    "wind": (-0.45, 0.45),  # radians, mean lean from vertical
    "gust": 0.05,  # radians, per-drop lean std
    "visibility": 100.0,  # gain on the drop's light-time share (see docstring)
    "drop_radiance": (1.0, 1.4),  # drop radiance relative to the mean of the upper third of the frame
    "veil_max": 0.08,  # veil of unresolved distant rain at severity 1
    "bins": 6,  # depth layers rendered with one defocus each
}


def rain(clean: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Rain streaks from falling drops seen during an exposure (Garg & Nayar 2004, 2006).

    Drops fill the view frustum (density uniform in volume), diameters follow Marshall &
    Palmer (1948), N(D) ~ exp(-4.1 R^-0.21 D), and fall at terminal velocity
    v = 9.65 - 10.3 exp(-0.6 D) m/s (Atlas, Srivastava & Sekhon 1973).  A drop at depth z
    images to a streak of length L = f v T / z and width d = f D / z pixels.  A pixel the
    streak crosses becomes (1 - a) B + a E: E is the drop's radiance (a drop refracts light
    from a wide field of view, so E follows the frame's bright upper part, not the local
    background: streaks can darken a bright sky) and a the drop's share of the exposure
    there, its image area x T spread over the streak: a = (pi/4) d^2 / ((L + d) max(d, 1)),
    i.e. tau / T = d / L for drops wider than a pixel.  `visibility` multiplies a, because
    at 128 px physically exact streaks are nearly invisible and every synthetic rain set
    exaggerates them.  Streaks off the focus plane are spread by a pillbox circle of
    confusion (thin lens), layer by depth, and rain beyond `depth` adds a veil towards E.
    Severity keeps a growing share of the drawn drops and scales the veil.
    """
    clean = _check(clean, severity, "rain")
    height, width, _ = clean.shape
    short = min(height, width)
    cfg = RAIN
    focal = cfg["focal"] * short
    z_near, z_far = cfg["depth"]
    volume = (z_far ** 3 - z_near ** 3) / 3.0 * (height / focal) * (width / focal)  # frustum, m^3
    count = int(cfg["density"] * volume)
    keep = rng.random(count) < severity
    depth = (z_near ** 3 + rng.random(count) * (z_far ** 3 - z_near ** 3)) ** (1 / 3)
    rate = rng.uniform(*cfg["rain_rate"])
    scale_mm = 1.0 / (4.1 * rate ** -0.21)
    diameter_mm = np.clip(0.3 + rng.exponential(scale_mm, count), 0.3, 6.0)
    velocity = 9.65 - 10.3 * np.exp(-0.6 * diameter_mm)
    exposure = np.exp(rng.uniform(np.log(cfg["exposure"][0]), np.log(cfg["exposure"][1])))
    # Drops anywhere in the frustum: image position uniform, extended past the frame by a streak.
    centre_y = rng.uniform(-0.2, 1.2, count) * height
    centre_x = rng.uniform(-0.1, 1.1, count) * width
    lean = rng.uniform(*cfg["wind"]) + rng.normal(0.0, cfg["gust"], count)
    radiance_gain = rng.uniform(*cfg["drop_radiance"])
    length = focal * velocity * exposure / depth
    width_px = focal * diameter_mm * 1e-3 / depth
    # Light-time of the drop (its image area x T) spread over the streak (length x at least one pixel).
    footprint = np.maximum(width_px, 1.0)
    alpha = np.clip(cfg["visibility"] * np.pi / 4 * width_px ** 2 / ((length + width_px) * footprint), 0.0, 1.0)
    coc = focal * cfg["aperture"] * np.abs(1.0 / depth - 1.0 / cfg["focus"])  # diameter, pixels
    edges = np.quantile(depth, np.linspace(0, 1, cfg["bins"] + 1))
    clear = np.ones((height, width), np.float32)
    for b in range(cfg["bins"]):
        inside = keep & (depth >= edges[b]) & (depth <= edges[b + 1]) if b == cfg["bins"] - 1 else \
            keep & (depth >= edges[b]) & (depth < edges[b + 1])
        if not inside.any():
            continue
        samples = max(int(np.ceil(length[inside].max() * 1.5)), 2)
        t = np.linspace(-0.5, 0.5, samples)[None, :] * length[inside, None]
        ys = centre_y[inside, None] + t * np.cos(lean[inside, None])
        xs = centre_x[inside, None] + t * np.sin(lean[inside, None])
        # Per point: the drop's opacity x its footprint width (the disk below spreads it back).
        weight = (alpha[inside] * footprint[inside] * length[inside] / samples)[:, None]
        trace = _splat_points(ys.ravel(), xs.ravel(), np.broadcast_to(weight, ys.shape).ravel(), (height, width))
        radius = 0.5 * (np.median(footprint[inside]) + np.median(coc[inside]))
        layer = np.clip(_filter(trace, _disk(radius)), 0.0, 1.0)
        clear *= 1.0 - layer
    layers = 1.0 - clear
    upper = clean[: max(height // 3, 1)].reshape(-1, 3).mean(axis=0)
    radiance = np.clip(upper * radiance_gain + 0.1, 0.0, 1.0).astype(np.float32)
    veil = cfg["veil_max"] * severity
    veiled = clean * (1.0 - veil) + radiance * veil
    return _finish(veiled * (1.0 - layers[..., None]) + radiance * layers[..., None])


# ----------------------------------------------------------------------------- snow

SNOW = {
    "density": 8000.0,  # flakes per cubic metre at severity 1 (each kept if u < severity)
    "depth": (0.12, 4.0),  # metres, density uniform in the frustum; farther snow is the veil
    "flake_radius_mm": (1.5, 0.5),  # log-normal: median mm, sigma of log
    "fall_speed": (0.6, 1.6),  # m/s (Langleben 1954: 0.5 .. 2)
    "exposure": (1 / 200, 1 / 40),  # s
    "focal": 1.2,
    "aperture": (0.004, 0.012),  # m
    "focus": (3.0, 15.0),  # m
    "wind": (-0.8, 0.8),  # radians from vertical
    "albedo": (0.85, 1.0),
    "veil_max": 0.1,
    "bins": 8,
}


def snow(clean: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Snowfall as 3D flakes through a thin lens: in-focus dots, out-of-focus bokeh disks.

    Flakes fill the view frustum; a flake of radius a at depth z images to radius f a / z and
    falls f v T / z pixels during the exposure (Langleben 1954 fall speeds).  The camera
    focuses at a random distance; each flake is spread over its thin-lens circle of confusion,
    c = f A |1/z - 1/z_f| (Potmesil & Chakravarty 1981), with its light conserved, so flakes
    near the lens become large faint disks and flakes near the focus plane small opaque dots.
    Depth layers are alpha-composited front to back towards a snow colour lit by the scene
    (albedo x the frame's bright level), over a faint veil of unresolved distant snow.
    Unlike the training snow (Gaussian flakes of a few fixed sizes) and ImageNet-C snow
    (thresholded noise), size, blur and streak all follow from each flake's depth.
    """
    clean = _check(clean, severity, "snow")
    height, width, _ = clean.shape
    short = min(height, width)
    cfg = SNOW
    focal = cfg["focal"] * short
    z_near, z_far = cfg["depth"]
    volume = (z_far ** 3 - z_near ** 3) / 3.0 * (height / focal) * (width / focal)  # frustum, m^3
    count = int(cfg["density"] * volume)
    keep = rng.random(count) < severity
    depth = (z_near ** 3 + rng.random(count) * (z_far ** 3 - z_near ** 3)) ** (1 / 3)
    median_mm, spread = cfg["flake_radius_mm"]
    radius_m = median_mm * 1e-3 * np.exp(rng.normal(0.0, spread, count))
    speed = rng.uniform(*cfg["fall_speed"], count)
    exposure = np.exp(rng.uniform(np.log(cfg["exposure"][0]), np.log(cfg["exposure"][1])))
    aperture = rng.uniform(*cfg["aperture"])
    focus = rng.uniform(*cfg["focus"])
    wind = rng.uniform(*cfg["wind"])
    centre_y = rng.uniform(-0.1, 1.1, count) * height
    centre_x = rng.uniform(-0.1, 1.1, count) * width
    albedo = rng.uniform(*cfg["albedo"])
    radius_px = focal * radius_m / depth
    fall_px = focal * speed * exposure / depth
    coc_px = focal * aperture * np.abs(1.0 / depth - 1.0 / focus)
    edges = np.quantile(depth, np.linspace(0, 1, cfg["bins"] + 1))
    edges[-1] = np.inf
    clear = np.ones((height, width), np.float32)
    for b in range(cfg["bins"]):
        inside = keep & (depth >= edges[b]) & (depth < edges[b + 1])
        if not inside.any():
            continue
        area = np.pi * radius_px[inside] ** 2  # light of the flake, in pixel areas
        coverage = _splat_points(centre_y[inside], centre_x[inside], area, (height, width))
        spread_r = np.median(radius_px[inside]) + 0.5 * np.median(coc_px[inside])
        kernel = fftconvolve(_disk(spread_r), _line(np.median(fall_px[inside]), wind))
        clear *= 1.0 - np.clip(_filter(coverage, kernel / kernel.sum()), 0.0, 1.0)
    alpha = (1.0 - clear)[..., None]
    level = float(np.quantile(_luminance(clean), 0.95))
    colour = np.float32(albedo * max(level, 0.6))
    veil = cfg["veil_max"] * severity
    veiled = clean * (1.0 - veil) + colour * veil
    return _finish(veiled * (1.0 - alpha) + colour * alpha)


# ----------------------------------------------------------------------------- motion blur

MOTION = {
    "sigma_max": 0.035,  # Gaussian fall-off of the trail at severity 1, fraction of the shorter side
    "gamma": 2.2,
    "highlight_gain": (1.5, 4.0),  # clipped pixels hold this much more light (Rim et al. 2022)
    "shot": (2e-5, 2e-4),  # Poisson-Gaussian noise variance per unit linear signal
    "read": (1e-7, 1e-6),  # signal-independent variance
}


def motion_trail_kernel(sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion-blur kernel as ImageNet-C uses it: a one-sided trail along `angle`
    with weights exp(-i^2 / 2 sigma^2) at i = 0, 1, 2 ... pixels, centred on its centroid."""
    sigma = max(float(sigma), 1e-3)
    steps = np.arange(0, int(np.ceil(3 * sigma)) + 1, dtype=np.float64)
    weights = np.exp(-steps ** 2 / (2 * sigma ** 2))
    along = steps - (weights * steps).sum() / weights.sum()  # no net shift of the image
    size = int(np.ceil(np.abs(along).max())) * 2 + 3
    c = (size - 1) / 2.0
    kernel = _splat_points(c + along * np.sin(angle), c + along * np.cos(angle), weights, (size, size))
    return kernel / kernel.sum()


def motion_blur(clean: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Straight, decaying motion trail (Hendrycks & Dietterich 2019, "motion_blur") synthesised
    the realistic way of Rim et al. (ECCV 2022, RSBlur): in linear light, with clipped
    highlights given back their missing energy before blurring and Poisson-Gaussian noise
    added after it.

    The kernel is ImageMagick's one-sided Gaussian-weighted line at a uniformly random angle
    (sigma = severity x `sigma_max` x shorter side), re-centred on its centroid: ImageNet-C's
    version also shifts the image by about a sigma, which no restorer could see.  Unlike the
    training generator (curved random camera paths, uniform weight, display space) and the
    first OOD set (averaged affine warps, no saturation), a pixel-saturated light smears into
    a bright streak and the blurred image carries sensor noise.
    """
    clean = _check(clean, severity, "motion_blur")
    cfg = MOTION
    angle = rng.uniform(0.0, 2 * np.pi)
    gain = rng.uniform(*cfg["highlight_gain"])
    shot = np.exp(rng.uniform(*np.log(cfg["shot"])))
    read = np.exp(rng.uniform(*np.log(cfg["read"])))
    noise = rng.standard_normal(clean.shape).astype(np.float32)
    linear = np.power(clean, cfg["gamma"])
    saturated = clean.max(axis=2, keepdims=True) >= 0.98
    linear = np.where(saturated, linear * gain, linear)
    kernel = motion_trail_kernel(severity * cfg["sigma_max"] * min(clean.shape[:2]), angle)
    blurred = np.clip(_filter(linear, kernel), 0.0, None)
    noisy = blurred + np.sqrt(shot * blurred + read) * noise
    return _finish(np.power(np.clip(noisy, 0.0, 1.0), 1.0 / cfg["gamma"]))


# ----------------------------------------------------------------------------- low light

# A typical camera-to-sRGB colour matrix (rows sum to 1); each image perturbs it.
_CAM_TO_SRGB = np.array([[1.70, -0.55, -0.15], [-0.25, 1.60, -0.35], [0.05, -0.55, 1.50]])
LOW_LIGHT = {
    "ev_max": 4.5,  # stops of under-exposure at severity 1
    "ccm_jitter": 0.08,
    "red_gain": (1.9, 2.4),  # white-balance gains (Brooks et al. 2019)
    "blue_gain": (1.5, 1.9),
    "shot": (1e-4, 1.2e-2),  # log-uniform shot-noise variance factor (Brooks et al. 2019)
    "bits": (10, 12),  # raw bit depth
}


def _smoothstep_inverse(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 3.0 * x ** 2 - 2.0 * x ** 3


def _bilinear_demosaic(raw: np.ndarray) -> np.ndarray:
    """RGGB Bayer mosaic -> RGB by bilinear interpolation of each colour plane."""
    height, width = raw.shape
    masks = np.zeros((3, height, width), np.float32)
    masks[0, 0::2, 0::2] = 1
    masks[1, 0::2, 1::2] = 1
    masks[1, 1::2, 0::2] = 1
    masks[2, 1::2, 1::2] = 1
    green = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4.0
    red_blue = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4.0
    planes = [nd_convolve(raw * masks[c], green if c == 1 else red_blue, mode="mirror") for c in range(3)]
    return np.stack(planes, axis=-1)


def low_light(clean: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Under-exposure in the raw domain of an "unprocessed" camera (Brooks et al., CVPR 2019).

    sRGB is unprocessed to camera raw: inverse smoothstep tone curve, inverse gamma 2.2,
    inverse colour matrix (a typical camera matrix, jittered), inverse white-balance gains,
    RGGB Bayer mosaic.  The raw signal is scaled down by severity x `ev_max` stops, given
    heteroscedastic noise with variance read + shot x signal (log shot noise uniform, log read
    noise = 2.18 log shot + 1.2 + N(0, 0.26), Brooks et al.'s fit), quantised to the raw bit
    depth, and processed back with bilinear demosaicking, the same white balance, colour
    matrix, gamma and tone curve, but no brightening: the image stays dark.  The noise is
    mosaicked and demosaicked (spatially correlated, coloured by the matrix), unlike the
    per-channel noise of the training generator and the first OOD set.
    """
    clean = _check(clean, severity, "low_light")
    height, width, _ = clean.shape
    cfg = LOW_LIGHT
    cam_to_srgb = _CAM_TO_SRGB + rng.uniform(-1, 1, (3, 3)) * cfg["ccm_jitter"]
    cam_to_srgb /= cam_to_srgb.sum(axis=1, keepdims=True)
    srgb_to_cam = np.linalg.inv(cam_to_srgb)
    gains = np.array([rng.uniform(*cfg["red_gain"]), 1.0, rng.uniform(*cfg["blue_gain"])])
    log_shot = rng.uniform(np.log(cfg["shot"][0]), np.log(cfg["shot"][1]))
    log_read = 2.18 * log_shot + 1.20 + rng.normal(0.0, 0.26)
    bits = int(rng.integers(cfg["bits"][0], cfg["bits"][1] + 1))
    noise = rng.standard_normal((height, width)).astype(np.float32)
    linear = np.power(np.maximum(_smoothstep_inverse(clean), 1e-8), 2.2)
    camera = np.clip(linear @ srgb_to_cam.T / gains, 0.0, 1.0)
    raw = np.zeros((height, width), np.float32)
    raw[0::2, 0::2] = camera[0::2, 0::2, 0]
    raw[0::2, 1::2] = camera[0::2, 1::2, 1]
    raw[1::2, 0::2] = camera[1::2, 0::2, 1]
    raw[1::2, 1::2] = camera[1::2, 1::2, 2]
    raw = raw * 2.0 ** (-cfg["ev_max"] * severity)
    raw = raw + np.sqrt(np.exp(log_read) + np.exp(log_shot) * raw) * noise
    levels = 2 ** bits - 1
    raw = np.round(np.clip(raw, 0.0, 1.0) * levels) / levels
    camera = _bilinear_demosaic(raw.astype(np.float32)) * gains
    linear = np.clip(camera @ cam_to_srgb.T, 0.0, 1.0)
    return _finish(_smoothstep(np.power(linear, 1.0 / 2.2)))


# ----------------------------------------------------------------------------- raindrop

RAINDROP = {
    "drops_max": 20,  # drops per (128 px)^2 at severity 1 (each kept if u < severity)
    "radius": (0.04, 0.11),  # metaball radius, fraction of the shorter side
    "steepness": 0.6,  # water height per unit of metaball field above the threshold, in drop radii
    "trail_probability": 0.25,  # a drop that slid down and left a trail of droplets above it
    "refractive_index": 1.333,
    "scene_distance": (8.0, 20.0),  # glass-to-scene lever in drop heights (sets how far rays bend)
    "defocus": (0.012, 0.03),  # circle-of-confusion radius of the glass, fraction of the shorter side
    "reflection": 0.8,  # reflected sky radiance relative to the frame's upper third
}


def raindrop(clean: np.ndarray, rng: np.random.Generator, severity: float) -> np.ndarray:
    """Adherent raindrops on glass in front of a camera focused on the scene.

    Drop shapes are metaballs (Blinn 1982): the sum of (r^2 / (r^2 + |p - c|^2))^2 bumps,
    thresholded, so neighbouring drops merge into irregular blobs and some drops drag a
    trail of smaller droplets above them.  The water height follows the field above the
    threshold, scaled by the local drop radius (so small and large drops are equally steep).
    Each ray is refracted at the surface by Snell's law (n = 1.333) and lands on the scene
    displaced by the lever x tan(refraction deviation); the transmitted share is 1 - F with F
    Schlick's (1994) Fresnel approximation, zero beyond the critical angle (total internal
    reflection), which darkens drop rims; the reflected share F shows the bright upper part
    of the frame.  The glass is out of focus, so the whole drop layer (mask and content) is
    spread by a pillbox circle of confusion before it is composited (You et al., TPAMI 2016,
    model adherent drops as blurred, blended layers).  Unlike the training drops (flipped,
    zoomed fish-eye views in ellipses) and the first OOD set (spherical caps, Gaussian-blurred
    content, specular spot), the shape, the Fresnel/TIR shading and the pillbox defocus of
    the layer are what set these drops apart.
    """
    clean = _check(clean, severity, "raindrop")
    height, width, _ = clean.shape
    short = min(height, width)
    cfg = RAINDROP
    count = max(int(round(cfg["drops_max"] * height * width / 128 ** 2)), 1)
    keep = rng.random(count) < severity
    centres = rng.uniform([0, 0], [height, width], size=(count, 2))
    radii = rng.uniform(*cfg["radius"], count) * short
    trails = rng.random(count) < cfg["trail_probability"]
    trail_len = rng.uniform(2.0, 6.0, count)  # in drop radii
    lever = rng.uniform(*cfg["scene_distance"])
    defocus = rng.uniform(*cfg["defocus"]) * short
    balls_y, balls_x, balls_r = [], [], []
    for i in np.flatnonzero(keep):
        balls_y.append(centres[i, 0])
        balls_x.append(centres[i, 1])
        balls_r.append(radii[i])
        if trails[i]:
            n = int(np.ceil(trail_len[i]))
            offsets = np.linspace(1.0, trail_len[i], n) * radii[i]
            balls_y.extend(centres[i, 0] - offsets)
            balls_x.extend(centres[i, 1] + rng.normal(0.0, 0.15, n) * radii[i])
            balls_r.extend(radii[i] * rng.uniform(0.2, 0.35, n))
    if not balls_r:
        return _finish(clean.copy())
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.zeros((height, width), np.float32)
    radius_sum = np.zeros((height, width), np.float32)  # field-weighted ball radius: the local drop size
    for cy, cx, r in zip(balls_y, balls_x, balls_r, strict=True):
        reach = int(np.ceil(4 * r))
        top, bottom = max(int(cy) - reach, 0), min(int(cy) + reach + 1, height)
        left, right = max(int(cx) - reach, 0), min(int(cx) + reach + 1, width)
        if top >= bottom or left >= right:
            continue
        d2 = (y[top:bottom, left:right] - cy) ** 2 + (x[top:bottom, left:right] - cx) ** 2
        bump = (r * r / (r * r + d2)) ** 2
        field[top:bottom, left:right] += bump
        radius_sum[top:bottom, left:right] += r * bump
    threshold = 0.5
    mask = (field > threshold).astype(np.float32)
    local_radius = radius_sum / np.maximum(field, 1e-6)
    surface = cfg["steepness"] * local_radius * np.clip(field - threshold, 0.0, None)  # height in pixels
    grad_y, grad_x = np.gradient(surface)
    slope = np.hypot(grad_y, grad_x)
    incidence = np.arctan(slope)  # angle between the ray and the surface normal
    n = cfg["refractive_index"]
    sin_out = np.clip(n * np.sin(incidence), 0.0, 1.0)
    deviation = np.arcsin(sin_out) - incidence  # exit angle minus incidence: how far the ray bends
    unit_y = grad_y / np.maximum(slope, 1e-6)
    unit_x = grad_x / np.maximum(slope, 1e-6)
    shift = lever * local_radius * np.tan(np.clip(deviation, 0.0, 1.2)) * mask
    source_y, source_x = y - unit_y * shift, x - unit_x * shift
    seen = np.stack([map_coordinates(clean[..., c], [source_y, source_x], order=1, mode="mirror")
                     for c in range(3)], axis=-1)
    r0 = ((n - 1) / (n + 1)) ** 2
    fresnel = r0 + (1 - r0) * (1 - np.cos(incidence)) ** 5
    critical = np.arcsin(1.0 / n)
    transmitted = np.clip((critical - incidence) / 0.35, 0.0, 1.0) * (1.0 - fresnel)
    sky = clean[: max(height // 3, 1)].reshape(-1, 3).mean(axis=0) * cfg["reflection"]
    drop = seen * transmitted[..., None] + sky * fresnel[..., None]
    disk = _disk(defocus)
    alpha = np.clip(_filter(mask, disk), 0.0, 1.0)[..., None]
    layer = _filter(drop * mask[..., None], disk)
    return _finish(clean * (1.0 - alpha) + layer)


GENERATORS = {
    "haze": fog,
    "rain": rain,
    "snow": snow,
    "motion_blur": motion_blur,
    "low_light": low_light,
    "raindrop": raindrop,
}
