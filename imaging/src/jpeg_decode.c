/*
 * One JPEG decode through libjpeg's own API (libjpeg-turbo 3, the library turbojpeg-sys builds),
 * with an error manager that sees every warning. TurboJPEG keeps the text of the first warning
 * only: a harmless one early (junk between two header segments, an odd JFIF version) hid a
 * corrupt scan after it, which libjpeg fills with grey. Here each warning is sorted as it comes:
 * those that leave every pixel as encoded are counted, and the first of any other is kept, so the
 * caller refuses a picture with grey or smeared rows whatever came before. The same API reaches
 * 12-bit samples (jpeg12_read_scanlines) and lossless ones of up to 16 bits (jpeg16_...).
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "jpeglib.h"
#include "jerror.h"

/* What one decode met (jpeg_decode.rs mirrors this). */
struct imaging_jpeg_report {
  unsigned int benign_warnings;
  unsigned int bad_warnings;
  /* The error, or the first warning that is not benign, or else the first benign one. */
  char message[JMSG_LENGTH_MAX];
};

struct error_mgr {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  struct imaging_jpeg_report *report;
};

struct progress_mgr {
  struct jpeg_progress_mgr pub;
  int max_scans;
  struct error_mgr *err;
};

/* Warnings after which every pixel is still as encoded: bytes skipped between markers, a JFIF
 * version or Adobe transform code libjpeg does not know (it decodes as it would anyway). */
static int benign(int code)
{
  return code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM;
}

static void on_error(j_common_ptr cinfo)
{
  struct error_mgr *err = (struct error_mgr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->report->message);
  longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
  struct error_mgr *err = (struct error_mgr *)cinfo->err;
  struct imaging_jpeg_report *report = err->report;
  if (level >= 0)
    return; /* trace messages */
  if (benign(cinfo->err->msg_code)) {
    if (report->benign_warnings++ == 0 && report->bad_warnings == 0)
      (*cinfo->err->format_message)(cinfo, report->message);
  } else if (report->bad_warnings++ == 0) {
    (*cinfo->err->format_message)(cinfo, report->message);
  }
}

/* Holds libjpeg to `max_scans` scans whatever the file holds (as TurboJPEG's scan limit). */
static void on_progress(j_common_ptr cinfo)
{
  struct progress_mgr *progress = (struct progress_mgr *)cinfo->progress;
  j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
  if (dinfo->input_scan_number > progress->max_scans) {
    snprintf(progress->err->report->message, JMSG_LENGTH_MAX,
             "JPEG image has more than %d scans", progress->max_scans);
    longjmp(progress->err->jump, 1);
  }
}

/*
 * Decodes `data` at 1/`scale_denom` to `layout` (1 gray, 3 RGB, 4 CMYK) into `out`: `width` x
 * `height` samples rows, 8-bit samples for a precision up to 8, 16-bit ones past it. The frame
 * must be the one the caller expects (`precision`, and that output size). Returns 0 when every row
 * was decoded (the report says what warnings came), -1 on an error (the report says which).
 */
int imaging_jpeg_decode(const unsigned char *data, unsigned long len, unsigned int scale_denom,
                        int layout, int max_scans, int precision, unsigned int width,
                        unsigned int height, void *out, struct imaging_jpeg_report *report)
{
  struct jpeg_decompress_struct dinfo;
  struct error_mgr err;
  struct progress_mgr progress;
  /* Read after a longjmp: volatile, so the value set before it is the one seen. */
  volatile int created = 0;

  memset(report, 0, sizeof(*report));
  memset(&dinfo, 0, sizeof(dinfo));
  dinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  err.report = report;
  if (setjmp(err.jump)) {
    if (created)
      jpeg_destroy_decompress(&dinfo);
    return -1;
  }
  jpeg_create_decompress(&dinfo);
  created = 1;
  progress.pub.progress_monitor = on_progress;
  progress.max_scans = max_scans;
  progress.err = &err;
  dinfo.progress = &progress.pub;
  jpeg_mem_src(&dinfo, data, len);
  jpeg_read_header(&dinfo, TRUE);
  if (dinfo.data_precision != precision) {
    snprintf(report->message, JMSG_LENGTH_MAX,
             "libjpeg reads %d-bit samples where the header parser read %d", dinfo.data_precision,
             precision);
    longjmp(err.jump, 1);
  }
  dinfo.scale_num = 1;
  dinfo.scale_denom = scale_denom;
  dinfo.out_color_space = layout == 1 ? JCS_GRAYSCALE : layout == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&dinfo);
  if (dinfo.output_width != width || dinfo.output_height != height ||
      dinfo.output_components != layout) {
    snprintf(report->message, JMSG_LENGTH_MAX,
             "libjpeg decodes %ux%u with %d components where the header parser read %ux%u with %d",
             dinfo.output_width, dinfo.output_height, dinfo.output_components, width, height,
             layout);
    longjmp(err.jump, 1);
  }
  {
    /* All rows at once, as TurboJPEG asks for them: libjpeg hands out as many as it has. */
    size_t stride = (size_t)width * (size_t)layout;
    size_t sample = precision <= 8 ? 1 : 2;
    void **rows = (void **)(*dinfo.mem->alloc_small)((j_common_ptr)&dinfo, JPOOL_IMAGE,
                                                     sizeof(void *) * (size_t)height);
    for (size_t y = 0; y < height; y++)
      rows[y] = (unsigned char *)out + y * stride * sample;
    while (dinfo.output_scanline < dinfo.output_height) {
      JDIMENSION at = dinfo.output_scanline, left = dinfo.output_height - at, got;
      if (precision <= 8)
        got = jpeg_read_scanlines(&dinfo, (JSAMPARRAY)rows + at, left);
      else if (precision <= 12)
        got = jpeg12_read_scanlines(&dinfo, (J12SAMPARRAY)rows + at, left);
      else
        got = jpeg16_read_scanlines(&dinfo, (J16SAMPARRAY)rows + at, left);
      if (got == 0)
        break; /* suspended: cannot happen with a memory source */
    }
  }
  jpeg_finish_decompress(&dinfo);
  jpeg_destroy_decompress(&dinfo);
  return 0;
}
