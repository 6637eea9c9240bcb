/* A headless sway for tests, and a window of known colours on it: see sway.h. */
#include "sway.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wayland-client.h>

#include "xdg-shell-client-protocol.h"

#define SWAY_UID 65534
#define START_TIMEOUT_MS 5000
#define SWAYMSG_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 2000
#define WINDOW_TIMEOUT_MS 3000

enum { PATH_CONFIG, PATH_LOG, PATH_SOCKET, PATH_IPC };

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char dirs[1024], file[1200];
	snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
	for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(file, sizeof(file), "%s/%s", dir, prog);
		if (access(file, X_OK) == 0)
			return true;
	}
	return false;
}

/* Waits for pid's exit for up to timeout_ms; true when it exited (reaped). */
static bool wait_pid(pid_t pid, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	do {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		sleep_ms(5);
	} while (now_ms() < deadline);
	return false;
}

bool pc_test_sway_alive(struct pc_test_sway *s)
{
	if (s->pid <= 0)
		return false;
	pid_t r = waitpid(s->pid, NULL, WNOHANG);
	if (r == s->pid || (r < 0 && errno == ECHILD)) {
		s->pid = -1;
		return false;
	}
	return true;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

void pc_test_sway_stop(struct pc_test_sway *s, bool show_log)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		if (!wait_pid(s->pid, STOP_TIMEOUT_MS)) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
		}
		s->pid = -1;
	}
	if (show_log && s->dir[0]) {
		FILE *f = fopen(s->path[PATH_LOG], "r");
		char line[512];
		fprintf(stderr, "    --- sway log ---\n");
		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "    %s", line);
		if (f)
			fclose(f);
	}
	if (s->dir[0])
		remove_dir(s->dir);
	s->dir[0] = '\0';
}

static void registry_global(void *data, struct wl_registry *registry, uint32_t name, const char *interface,
			    uint32_t version)
{
	(void)registry, (void)name, (void)version;
	if (strcmp(interface, wl_output_interface.name) == 0)
		*(bool *)data = true;
}

static void registry_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
	(void)data, (void)registry, (void)name;
}

/* The output exists a moment after the socket: wait for its global. */
static bool wait_output(int timeout_ms)
{
	static const struct wl_registry_listener listener = {registry_global, registry_global_remove};
	int64_t deadline = now_ms() + timeout_ms;
	bool found = false;
	while (!found && now_ms() < deadline) {
		struct wl_display *display = wl_display_connect(NULL);
		if (!display) {
			sleep_ms(10);
			continue;
		}
		struct wl_registry *registry = wl_display_get_registry(display);
		wl_registry_add_listener(registry, &listener, &found);
		wl_display_roundtrip(display);
		wl_registry_destroy(registry);
		wl_display_disconnect(display);
		if (!found)
			sleep_ms(10);
	}
	return found;
}

/* Starts a compositor as uid 65534: sway with config_text and env (NULL-terminated) naming its
 * backend, or weston (headless) when config_text is NULL. */
static int start(struct pc_test_sway *s, const char *config_text, char *const *backend_env, char *why, size_t why_size)
{
	const char *prog = config_text ? "sway" : "weston";
	memset(s, 0, sizeof(*s));
	s->pid = -1;
	if (geteuid() != 0) {
		snprintf(why, why_size, "not root: the compositors run as uid %d, which only root can start", SWAY_UID);
		return 0;
	}
	if (!in_path(prog) || !in_path("setpriv") || (config_text && !in_path("swaymsg"))) {
		snprintf(why, why_size, "%s, setpriv or swaymsg is not installed (scripts/install-deps.sh)", prog);
		return 0;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/p2pcast-sway-XXXXXX");
	if (!mkdtemp(s->dir)) {
		snprintf(why, why_size, "mkdtemp: %s", strerror(errno));
		s->dir[0] = '\0';
		return -1;
	}
	static const char *const names[] = {"config", "sway.log", "wayland-1", NULL};
	for (int i = 0; names[i]; i++)
		snprintf(s->path[i], sizeof(s->path[i]), "%s/%s", s->dir, names[i]);
	if (chmod(s->dir, 0700) < 0 || chown(s->dir, SWAY_UID, SWAY_UID) < 0) {
		snprintf(why, why_size, "chmod/chown %s: %s", s->dir, strerror(errno));
		goto error;
	}
	FILE *f = config_text ? fopen(s->path[PATH_CONFIG], "w") : NULL;
	if (config_text && !f) {
		snprintf(why, why_size, "%s: %s", s->path[PATH_CONFIG], strerror(errno));
		goto error;
	}
	if (f) {
		fputs(config_text, f);
		fclose(f);
	}

	s->pid = fork();
	if (s->pid < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		goto error;
	}
	if (s->pid == 0) {
		char runtime[96];
		snprintf(runtime, sizeof(runtime), "XDG_RUNTIME_DIR=%s", s->dir);
		char *env[16] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", runtime, "WLR_LIBINPUT_NO_DEVICES=1",
				 "WLR_RENDERER=pixman"};
		for (int i = 0; i < 8 && backend_env[i]; i++)
			env[4 + i] = backend_env[i];
		char *sway[] = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sway", "-c",
				s->path[PATH_CONFIG], NULL};
		char *weston[] = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "weston",
				  "--backend=headless-backend.so", "--socket=wayland-1", "--idle-time=0", NULL};
		char **argv = config_text ? sway : weston;
		int log = open(s->path[PATH_LOG], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int null = open("/dev/null", O_RDONLY);
		if (log < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(log, STDOUT_FILENO) < 0 ||
		    dup2(log, STDERR_FILENO) < 0)
			_exit(127);
		execvpe("setpriv", argv, env);
		_exit(127);
	}
	/* setpriv execs sway: the same PID, which names the IPC socket (weston has none). */
	if (config_text)
		snprintf(s->path[PATH_IPC], sizeof(s->path[PATH_IPC]), "%s/sway-ipc.%d.%d.sock", s->dir, SWAY_UID,
			 (int)s->pid);
	else
		snprintf(s->path[PATH_IPC], sizeof(s->path[PATH_IPC]), "%s", s->path[PATH_SOCKET]);

	int64_t deadline = now_ms() + START_TIMEOUT_MS;
	struct stat st;
	while (stat(s->path[PATH_SOCKET], &st) < 0 || stat(s->path[PATH_IPC], &st) < 0) {
		if (!pc_test_sway_alive(s)) {
			snprintf(why, why_size, "%s exited before its sockets appeared", prog);
			goto error;
		}
		if (now_ms() > deadline) {
			snprintf(why, why_size, "%s's sockets did not appear within %d ms", prog, START_TIMEOUT_MS);
			goto error;
		}
		sleep_ms(5);
	}
	setenv("XDG_RUNTIME_DIR", s->dir, 1);
	setenv("WAYLAND_DISPLAY", "wayland-1", 1);
	if (!wait_output((int)(deadline - now_ms()))) {
		snprintf(why, why_size, "%s's output did not appear within %d ms", prog, START_TIMEOUT_MS);
		goto error;
	}
	return 1;

error:
	pc_test_sway_stop(s, true);
	return -1;
}

int pc_test_sway_start(struct pc_test_sway *s, int width, int height, char *why, size_t why_size)
{
	char config[512];
	/* One tiled window fills the output: what it draws is what the output shows. */
	snprintf(config, sizeof(config),
		 "output HEADLESS-1 resolution %dx%d\n"
		 "default_border none\n"
		 "default_floating_border none\n"
		 "gaps inner 0\n"
		 "gaps outer 0\n"
		 "xwayland disable\n",
		 width, height);
	char *env[] = {"WLR_BACKENDS=headless", "WLR_HEADLESS_OUTPUTS=1", NULL};
	return start(s, config, env, why, why_size);
}

int pc_test_weston_start(struct pc_test_sway *s, char *why, size_t why_size)
{
	char *env[] = {NULL};
	return start(s, NULL, env, why, why_size);
}

int pc_test_sway_start_nested(struct pc_test_sway *s, const struct pc_test_sway *outer, char *why, size_t why_size)
{
	char display[160];
	snprintf(display, sizeof(display), "WAYLAND_DISPLAY=%s", outer->path[PATH_SOCKET]);
	char *env[] = {"WLR_BACKENDS=wayland", "WLR_WL_OUTPUTS=2", display, NULL};
	return start(s, "xwayland disable\n", env, why, why_size);
}

int pc_test_sway_msg(const struct pc_test_sway *s, const char *command)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execlp("swaymsg", "swaymsg", "-s", s->path[PATH_IPC], command, (char *)NULL);
		_exit(127);
	}
	int64_t deadline = now_ms() + SWAYMSG_TIMEOUT_MS;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
		if (r < 0 || now_ms() > deadline)
			break;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* ---- the window ---- */

#define WINDOW_BUFFERS 4

struct window_buffer {
	struct wl_buffer *wl_buffer;
	uint32_t *data;
	size_t size;
	int width, height;
	bool busy; /* attached and not yet released by sway */
};

struct pc_test_window {
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct wl_shm *shm;
	struct xdg_wm_base *wm_base;
	struct wl_surface *surface;
	struct xdg_surface *xdg_surface;
	struct xdg_toplevel *toplevel;
	uint32_t colour;       /* the first: what a resize repaints */
	int width, height;     /* the canvas */
	int config_width, config_height;
	bool configured;       /* an xdg_surface.configure was acked and not yet drawn for */
	uint32_t *canvas;      /* what the window shows, 0xXXRRGGBB */
	struct window_buffer buf[WINDOW_BUFFERS];
};

static void buffer_release(void *data, struct wl_buffer *wl_buffer)
{
	(void)wl_buffer;
	((struct window_buffer *)data)->busy = false;
}

static const struct wl_buffer_listener buffer_listener = {buffer_release};

static void buffer_destroy(struct window_buffer *b)
{
	if (b->wl_buffer)
		wl_buffer_destroy(b->wl_buffer);
	if (b->data)
		munmap(b->data, b->size);
	memset(b, 0, sizeof(*b));
}

static int buffer_create(struct pc_test_window *w, struct window_buffer *b)
{
	size_t size = (size_t)w->width * (size_t)w->height * 4;
	int fd = memfd_create("p2pcast-test-window", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	b->data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b->data == MAP_FAILED) {
		b->data = NULL;
		close(fd);
		return -1;
	}
	b->size = size;
	struct wl_shm_pool *pool = wl_shm_create_pool(w->shm, fd, (int32_t)size);
	b->wl_buffer = wl_shm_pool_create_buffer(pool, 0, w->width, w->height, w->width * 4, WL_SHM_FORMAT_XRGB8888);
	wl_shm_pool_destroy(pool);
	close(fd);
	wl_buffer_add_listener(b->wl_buffer, &buffer_listener, b);
	b->width = w->width;
	b->height = w->height;
	return 0;
}

/* Shows the canvas, r damaged. */
static int present(struct pc_test_window *w, struct pc_rect r)
{
	int64_t deadline = now_ms() + WINDOW_TIMEOUT_MS;
	struct window_buffer *b = NULL;
	while (!b) {
		for (int i = 0; i < WINDOW_BUFFERS && !b; i++) {
			struct window_buffer *c = &w->buf[i];
			if (c->busy)
				continue;
			if (c->wl_buffer && (c->width != w->width || c->height != w->height))
				buffer_destroy(c);
			if (!c->wl_buffer && buffer_create(w, c) < 0)
				return -1;
			b = c;
		}
		if (!b && (wl_display_roundtrip(w->display) < 0 || now_ms() > deadline))
			return -1;
	}
	memcpy(b->data, w->canvas, b->size);
	b->busy = true;
	wl_surface_attach(w->surface, b->wl_buffer, 0, 0);
	wl_surface_damage_buffer(w->surface, r.x, r.y, r.w, r.h);
	wl_surface_commit(w->surface);
	return wl_display_roundtrip(w->display) < 0 ? -1 : 0;
}

static void paint(struct pc_test_window *w, struct pc_rect r, uint32_t colour)
{
	for (int y = r.y; y < r.y + r.h; y++)
		for (int x = r.x; x < r.x + r.w; x++)
			w->canvas[(size_t)y * w->width + x] = 0xff000000u | colour;
}

/* After a configure: a canvas of the size sway chose, all in the first colour. */
static int redraw(struct pc_test_window *w)
{
	w->configured = false;
	int width = w->config_width > 0 ? w->config_width : 320;
	int height = w->config_height > 0 ? w->config_height : 240;
	if (width != w->width || height != w->height || !w->canvas) {
		uint32_t *canvas = malloc((size_t)width * (size_t)height * 4);
		if (!canvas)
			return -1;
		free(w->canvas);
		w->canvas = canvas;
		w->width = width;
		w->height = height;
		paint(w, (struct pc_rect){0, 0, width, height}, w->colour);
	}
	return present(w, (struct pc_rect){0, 0, w->width, w->height});
}

static void wm_base_ping(void *data, struct xdg_wm_base *wm_base, uint32_t serial)
{
	(void)data;
	xdg_wm_base_pong(wm_base, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = {wm_base_ping};

static void xdg_surface_configure(void *data, struct xdg_surface *xdg_surface, uint32_t serial)
{
	struct pc_test_window *w = data;
	xdg_surface_ack_configure(xdg_surface, serial);
	w->configured = true;
}

static const struct xdg_surface_listener xdg_surface_listener = {xdg_surface_configure};

static void toplevel_configure(void *data, struct xdg_toplevel *toplevel, int32_t width, int32_t height,
			       struct wl_array *states)
{
	(void)toplevel, (void)states;
	struct pc_test_window *w = data;
	w->config_width = width;
	w->config_height = height;
}

static void toplevel_close(void *data, struct xdg_toplevel *toplevel)
{
	(void)data, (void)toplevel;
}

static const struct xdg_toplevel_listener toplevel_listener = {
	.configure = toplevel_configure,
	.close = toplevel_close,
};

static void window_global(void *data, struct wl_registry *registry, uint32_t name, const char *interface,
			  uint32_t version)
{
	(void)version;
	struct pc_test_window *w = data;
	if (strcmp(interface, wl_compositor_interface.name) == 0)
		w->compositor = wl_registry_bind(registry, name, &wl_compositor_interface, 4);
	else if (strcmp(interface, wl_shm_interface.name) == 0)
		w->shm = wl_registry_bind(registry, name, &wl_shm_interface, 1);
	else if (strcmp(interface, xdg_wm_base_interface.name) == 0)
		w->wm_base = wl_registry_bind(registry, name, &xdg_wm_base_interface, 1);
}

static const struct wl_registry_listener window_registry_listener = {window_global, registry_global_remove};

void pc_test_window_close(struct pc_test_window *w)
{
	if (!w)
		return;
	for (int i = 0; i < WINDOW_BUFFERS; i++)
		buffer_destroy(&w->buf[i]);
	if (w->toplevel)
		xdg_toplevel_destroy(w->toplevel);
	if (w->xdg_surface)
		xdg_surface_destroy(w->xdg_surface);
	if (w->surface)
		wl_surface_destroy(w->surface);
	if (w->wm_base)
		xdg_wm_base_destroy(w->wm_base);
	if (w->shm)
		wl_shm_destroy(w->shm);
	if (w->compositor)
		wl_compositor_destroy(w->compositor);
	if (w->registry)
		wl_registry_destroy(w->registry);
	if (w->display)
		wl_display_disconnect(w->display);
	free(w->canvas);
	free(w);
}

int pc_test_window_wait_size(struct pc_test_window *w, int width, int height, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		if (wl_display_roundtrip(w->display) < 0)
			return -1;
		if (w->configured && redraw(w) < 0)
			return -1;
		if (width == 0 || (w->width == width && w->height == height))
			return 0;
		if (now_ms() > deadline)
			return -1;
		sleep_ms(10);
	}
}

int pc_test_window_open(struct pc_test_window **out, uint32_t colour)
{
	struct pc_test_window *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->colour = colour;
	w->display = wl_display_connect(NULL);
	if (!w->display)
		goto error;
	w->registry = wl_display_get_registry(w->display);
	wl_registry_add_listener(w->registry, &window_registry_listener, w);
	if (wl_display_roundtrip(w->display) < 0 || !w->compositor || !w->shm || !w->wm_base)
		goto error;
	xdg_wm_base_add_listener(w->wm_base, &wm_base_listener, w);
	w->surface = wl_compositor_create_surface(w->compositor);
	w->xdg_surface = xdg_wm_base_get_xdg_surface(w->wm_base, w->surface);
	xdg_surface_add_listener(w->xdg_surface, &xdg_surface_listener, w);
	w->toplevel = xdg_surface_get_toplevel(w->xdg_surface);
	xdg_toplevel_add_listener(w->toplevel, &toplevel_listener, w);
	xdg_toplevel_set_title(w->toplevel, "p2pcast test window");
	wl_surface_commit(w->surface); /* no buffer yet: asks for the first configure */

	int64_t deadline = now_ms() + WINDOW_TIMEOUT_MS;
	while (!w->configured) {
		if (wl_display_roundtrip(w->display) < 0 || now_ms() > deadline)
			goto error;
		if (!w->configured)
			sleep_ms(5);
	}
	/* sway's first configure may leave the size to the client (0x0): the window then has to
	 * show something before sway tiles it and says its real size. */
	if (redraw(w) < 0)
		goto error;
	while (w->config_width <= 0 || w->config_height <= 0 || w->width != w->config_width ||
	       w->height != w->config_height) {
		if (wl_display_roundtrip(w->display) < 0 || now_ms() > deadline)
			goto error;
		if (w->configured && redraw(w) < 0)
			goto error;
		if (!w->configured)
			sleep_ms(5);
	}
	*out = w;
	return 0;

error:
	pc_test_window_close(w);
	return -1;
}

int pc_test_window_fill(struct pc_test_window *w, struct pc_rect r, uint32_t colour)
{
	if (r.x < 0)
		r.w += r.x, r.x = 0;
	if (r.y < 0)
		r.h += r.y, r.y = 0;
	if (r.x + r.w > w->width)
		r.w = w->width - r.x;
	if (r.y + r.h > w->height)
		r.h = w->height - r.y;
	if (r.w <= 0 || r.h <= 0)
		return 0;
	paint(w, r, colour);
	return present(w, r);
}

void pc_test_window_size(const struct pc_test_window *w, int *width, int *height)
{
	*width = w->width;
	*height = w->height;
}
