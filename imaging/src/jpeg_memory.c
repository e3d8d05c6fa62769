/*
 * libjpeg's system-dependent memory functions (libjpeg-turbo's jmemsys.h), in place of its
 * jmemnobs.c. Defining all eight here keeps jmemnobs.o out of the link: a static archive member is
 * only linked for a symbol still undefined, and jpeg_memory.rs has this object linked ahead of
 * libturbojpeg.a. (Should a libjpeg-turbo upgrade add a ninth, the link fails on a duplicate
 * symbol rather than quietly using the old functions.)
 *
 * Why: libjpeg allocates its large pools afresh for every image (a progressive JPEG's
 * whole-image coefficient buffer: 25 MB for a 4 MP photo at 4:4:4; the encoder's, for Huffman
 * optimisation), and frees them after. Freed to the allocator, they go back to the kernel, and the
 * next image faults them in again, every page zeroed. So a large pool comes from the buffers the
 * process step keeps between images (pixels.rs), through the two functions jpeg_memory.rs installs
 * here, and goes back to them when libjpeg frees it. Small pools, and everything before the
 * functions are installed, are malloc's, as in jmemnobs.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "jpeglib.h"
#include "jerror.h"

/* From this size on a pool comes from the kept buffers: pixels.rs's SMALLEST_KEPT. */
#define KEPT_FROM ((size_t)64 << 10)
/* In front of the block libjpeg gets: what the kept buffer was (its length and capacity), so that
 * it goes back whole. A multiple of 64 keeps the block as aligned as malloc's. */
#define HEADER ((size_t)64)

struct kept_header {
  void *buffer;
  size_t length;
  size_t capacity;
};

/* A buffer of at least `size` bytes; its length and capacity in *length and *capacity. */
typedef void *(*take_fn)(size_t size, size_t *length, size_t *capacity);
/* Gives a buffer from take_fn back. */
typedef void (*give_back_fn)(void *buffer, size_t length, size_t capacity);

static take_fn take_kept;
static give_back_fn give_back_kept;
/* How many large pools have come from the kept buffers since the process began. */
static size_t kept_pools;

void imaging_jpeg_install(take_fn take, give_back_fn give_back)
{
  __atomic_store_n(&give_back_kept, give_back, __ATOMIC_RELEASE);
  __atomic_store_n(&take_kept, take, __ATOMIC_RELEASE);
}

size_t imaging_jpeg_kept_pools(void)
{
  return __atomic_load_n(&kept_pools, __ATOMIC_RELAXED);
}

/* Whether a pool of `size` bytes comes from the kept buffers (else from malloc). */
static int from_kept(size_t size)
{
  return size >= KEPT_FROM && size <= SIZE_MAX / 2 &&
         __atomic_load_n(&take_kept, __ATOMIC_ACQUIRE) != NULL;
}

/* What a request for `size` bytes from jpeg_get_large takes (give or take malloc's own few
 * bytes): the memory budget counts this. */
size_t imaging_jpeg_pool_footprint(size_t size)
{
  if (size < KEPT_FROM)
    return size;
  return size <= SIZE_MAX - HEADER ? size + HEADER : SIZE_MAX;
}

void *jpeg_get_small(j_common_ptr cinfo, size_t sizeofobject)
{
  (void)cinfo;
  return malloc(sizeofobject);
}

void jpeg_free_small(j_common_ptr cinfo, void *object, size_t sizeofobject)
{
  (void)cinfo;
  (void)sizeofobject;
  free(object);
}

/* A pool given out by jpeg_get_large starts HEADER bytes into its block; from_kept() blocks carry a
 * kept_header there, the others a null one. */
void *jpeg_get_large(j_common_ptr cinfo, size_t sizeofobject)
{
  (void)cinfo;
  struct kept_header header = { NULL, 0, 0 };
  char *block;
  if (from_kept(sizeofobject)) {
    take_fn take = __atomic_load_n(&take_kept, __ATOMIC_ACQUIRE);
    header.buffer = take(sizeofobject + HEADER, &header.length, &header.capacity);
    block = header.buffer;
    if (block != NULL)
      __atomic_add_fetch(&kept_pools, 1, __ATOMIC_RELAXED);
  } else {
    block = malloc(sizeofobject + HEADER);
  }
  if (block == NULL)
    return NULL;
  *(struct kept_header *)block = header;
  return block + HEADER;
}

void jpeg_free_large(j_common_ptr cinfo, void *object, size_t sizeofobject)
{
  (void)cinfo;
  (void)sizeofobject;
  char *block = (char *)object - HEADER;
  struct kept_header header = *(struct kept_header *)block;
  if (header.buffer == NULL) {
    free(block);
    return;
  }
  give_back_fn give_back = __atomic_load_n(&give_back_kept, __ATOMIC_ACQUIRE);
  give_back(header.buffer, header.length, header.capacity);
}

/* The rest is jmemnobs.c's: no backing store, and a limit only when one is set. */
size_t jpeg_mem_available(j_common_ptr cinfo, size_t min_bytes_needed, size_t max_bytes_needed,
                          size_t already_allocated)
{
  (void)min_bytes_needed;
  if (cinfo->mem->max_memory_to_use) {
    if ((size_t)cinfo->mem->max_memory_to_use > already_allocated)
      return cinfo->mem->max_memory_to_use - already_allocated;
    return 0;
  }
  return max_bytes_needed;
}

/* jmemsys.h's backing_store_ptr; never dereferenced, as there is no backing store. */
void jpeg_open_backing_store(j_common_ptr cinfo, void *info, long total_bytes_needed)
{
  (void)info;
  (void)total_bytes_needed;
  ERREXIT(cinfo, JERR_NO_BACKING_STORE);
}

long jpeg_mem_init(j_common_ptr cinfo)
{
  (void)cinfo;
  return 0;
}

void jpeg_mem_term(j_common_ptr cinfo)
{
  (void)cinfo;
}
