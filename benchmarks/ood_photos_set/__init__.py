"""Second OOD benchmark (frozen): real photos from Debian wallpaper packages x a third generator family."""
