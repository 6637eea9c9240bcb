/* The ISP through rkaiq's uAPI2 (rkmpi_isp.h), as the SDK's media/samples/example/common/isp3.x
 * does on the RV1106: HDR_MODE in the environment, the sensor's entity name from its static
 * metadata, then sysctl init (with the IQ directory), prepare and start.
 *
 * UNVERIFIED on a board. Type-checked only against the declarations this file uses, transcribed
 * from the SDK's rkaiq headers for the RV1106 (uAPI2/rk_aiq_user_api2_sysctl.h, common/rk_aiq.h,
 * common/rk_aiq_types.h): rkaiq's full header tree was not at hand (docs/capture.md "rkmpi"). */
#include "rkmpi_isp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <rk_aiq_user_api2_sysctl.h>

#include "../log.h"

/* The SDK's samples keep 2 buffers on the raw capture device. */
#define RAW_BUFFERS 2

struct pc_rkmpi_isp {
	rk_aiq_sys_ctx_t *ctx;
	bool started;
};

int pc_rkmpi_isp_start(struct pc_rkmpi_isp **out, int cam_id, const char *iq_dir, char *err, size_t err_size)
{
	*out = NULL;
	struct pc_rkmpi_isp *isp = calloc(1, sizeof(*isp));
	if (!isp) {
		snprintf(err, err_size, "rkmpi: out of memory");
		return -ENOMEM;
	}
	/* rkaiq reads the HDR mode from the environment at init (the samples set it there too):
	 * linear, no HDR. */
	char mode[16];
	snprintf(mode, sizeof(mode), "%d", (int)RK_AIQ_WORKING_MODE_NORMAL);
	setenv("HDR_MODE", mode, 1);

	rk_aiq_static_info_t info = {0};
	if (rk_aiq_uapi2_sysctl_enumStaticMetasByPhyId(cam_id, &info) != XCAM_RETURN_NO_ERROR ||
	    !info.sensor_info.sensor_name[0]) {
		snprintf(err, err_size, "rkmpi: rkaiq finds no camera %d (is the sensor's driver loaded? dmesg | grep -i mipi)",
			 cam_id);
		free(isp);
		return -ENODEV;
	}
	pc_log("rkmpi: camera %d is %s, IQ files from %s", cam_id, info.sensor_info.sensor_name, iq_dir);
	if (rk_aiq_uapi2_sysctl_preInit_devBufCnt(info.sensor_info.sensor_name, "rkraw_rx", RAW_BUFFERS) !=
	    XCAM_RETURN_NO_ERROR)
		pc_log("rkmpi: rk_aiq_uapi2_sysctl_preInit_devBufCnt failed; going on with rkaiq's default");
	/* No error or per-frame metadata callbacks: neither is needed to stream. */
	isp->ctx = rk_aiq_uapi2_sysctl_init(info.sensor_info.sensor_name, iq_dir, NULL, NULL);
	if (!isp->ctx) {
		snprintf(err, err_size, "rkmpi: rk_aiq_uapi2_sysctl_init for %s failed (is there an IQ file for it in %s?)",
			 info.sensor_info.sensor_name, iq_dir);
		free(isp);
		return -ENODEV;
	}
	/* 0x0: the sensor's own output size (used by rkaiq only to check). */
	if (rk_aiq_uapi2_sysctl_prepare(isp->ctx, 0, 0, RK_AIQ_WORKING_MODE_NORMAL) != XCAM_RETURN_NO_ERROR) {
		snprintf(err, err_size, "rkmpi: rk_aiq_uapi2_sysctl_prepare failed (is another program, such as rkipc, using the camera?)");
		pc_rkmpi_isp_stop(isp);
		return -ENODEV;
	}
	if (rk_aiq_uapi2_sysctl_start(isp->ctx) != XCAM_RETURN_NO_ERROR) {
		snprintf(err, err_size, "rkmpi: rk_aiq_uapi2_sysctl_start failed");
		pc_rkmpi_isp_stop(isp);
		return -ENODEV;
	}
	isp->started = true;
	*out = isp;
	return 0;
}

void pc_rkmpi_isp_stop(struct pc_rkmpi_isp *isp)
{
	if (!isp)
		return;
	if (isp->started)
		rk_aiq_uapi2_sysctl_stop(isp->ctx, false);
	if (isp->ctx)
		rk_aiq_uapi2_sysctl_deinit(isp->ctx);
	free(isp);
}
