"""replica.render: the Gaussian-splat avatar, its rasterizer backends and the GAN refiner.

Public API (imported lazily):

    rasterize, available_backends, default_backend     one rasterizer, two backends (render.raster)
    Avatar, AvatarConfig, train_avatar, render          the avatar bound to the head mesh (render.avatar)
    Refiner, RefineConfig, train_refiner                the GAN refiner (render.refine)
    psnr, ssim, flicker                                 quality against ground truth (render.quality)
    render_video                                        params → mp4 with the original audio (render.video)
"""

from datasets.exports import lazy_getattr

_EXPORTS = {
    "rasterize": "render.raster", "available_backends": "render.raster", "default_backend": "render.raster",
    "Avatar": "render.avatar", "AvatarConfig": "render.avatar", "render": "render.avatar",
    "train_avatar": "render.avatar_train", "Refiner": "render.refine", "RefineConfig": "render.refine",
    "train_refiner": "render.refine", "psnr": "render.quality", "ssim": "render.quality",
    "flicker": "render.quality", "render_video": "render.video",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr("render", _EXPORTS)
