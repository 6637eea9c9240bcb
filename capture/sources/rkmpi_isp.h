/* The RV1106's ISP through rkaiq, as the rkmpi source needs it (rkmpi_vi.h): the 3A algorithms
 * (exposure, white balance, ...) tuned by the board's IQ files, running while the camera streams.
 * Kept apart from rkmpi_vi.c so that only this file includes rkaiq's headers (a deep tree of the
 * SDK's, beside rockit's). Built only with the Makefile's RKMPI=1. */
#ifndef PC_RKMPI_ISP_H
#define PC_RKMPI_ISP_H

#include <stddef.h>

struct pc_rkmpi_isp;

/* Starts the ISP of camera cam_id (0: the board's one) with the IQ files of iq_dir: finds the
 * sensor (rk_aiq_uapi2_sysctl_enumStaticMetasByPhyId), then init, prepare and start, as the SDK's
 * samples do before the VI is enabled. 0, or -ENODEV with err saying why. */
int pc_rkmpi_isp_start(struct pc_rkmpi_isp **out, int cam_id, const char *iq_dir, char *err, size_t err_size);

/* Stops and frees it (after the VI is disabled); NULL is fine. */
void pc_rkmpi_isp_stop(struct pc_rkmpi_isp *isp);

#endif
