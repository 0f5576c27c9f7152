// Uploading files to the signed URLs the API hands out (:getUploadEndpoint): plain PUTs,
// no API key (the URL is the permission), with progress.

/** PUT the file to the signed URL, reporting progress; resolves on a 2xx. */
export function put(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    request.setRequestHeader("content-type", "application/octet-stream");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) resolve();
      else {
        let message = request.statusText;
        try {
          message = JSON.parse(request.responseText).message || message;
        } catch {
          // not JSON: keep the status text
        }
        reject(Object.assign(new Error(message), { status: request.status }));
      }
    });
    request.addEventListener("error", () => reject(new Error("the upload failed (network)")));
    request.send(file);
  });
}
