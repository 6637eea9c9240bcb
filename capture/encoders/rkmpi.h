/* The media system and VENC channels of this process, shared by the rkmpi encoder (rkmpi.c) and
 * the rkmpi camera source (sources/rkmpi_vi.c): the vendor library keeps them per process, so
 * which channels are taken is kept in one place. Built only with the Makefile's RKMPI=1. */
#ifndef PC_RKMPI_H
#define PC_RKMPI_H

#include <stdint.h>

#include <rk_comm_venc.h>

/* At most this many VENC channels taken at once (both renditions of either user fit). */
#define PC_RKMPI_CHANNELS 4

/* A free VENC channel number, the media system (RK_MPI_SYS_Init) initialised with the first one
 * taken; -1 when that fails or none is free. */
int pc_rkmpi_channel_take(void);

/* Gives chn back; the last one given back ends the media system (RK_MPI_SYS_Exit). */
void pc_rkmpi_channel_release(int chn);

/* The H.264 channel both users create: baseline profile, NV12 pictures of width x height in,
 * `buffers` stream buffers of buf_size bytes out; the rate control is each user's own. */
void pc_rkmpi_avc_attr(VENC_CHN_ATTR_S *attr, int width, int height, uint32_t buffers, uint32_t buf_size);

#endif
