// Command fake-gcs: fake-gcs-server (github.com/fsouza/fake-gcs-server, the fakestorage package
// of v1.56.1) on one loopback port, plus the XML API writes that Google Cloud Storage serves and
// fake-gcs-server does not: a plain object PUT, a copy (x-goog-copy-source), create-only writes
// (x-goog-if-generation-match: 0) and XML multipart uploads (fsouza/fake-gcs-server issues 331
// and 852). object_store's GCS client (what calving-storage uses) writes through exactly these;
// everything else (reads, ranges, HEAD, listing, deletes, buckets) is fake-gcs-server's own.
//
// Built and started by calving-test-utils (rust/test-utils/src/gcs.rs) for the storage and rsm
// suites. It exits by itself when the process that started it is gone, or after -max-lifetime.
package main

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Uint("port", 0, "port to listen on (required)")
	lifetime := flag.Duration("max-lifetime", 20*time.Minute, "exit after this long")
	flag.Parse()
	if *port == 0 {
		log.Fatal("-port is required")
	}
	addr := net.JoinHostPort(*host, strconv.FormatUint(uint64(*port), 10))
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:      "http",
		Host:        *host,
		Port:        uint16(*port),
		NoListener:  true,
		PublicHost:  addr,
		ExternalURL: "http://" + addr,
		Writer:      os.Stderr,
	})
	if err != nil {
		log.Fatal(err)
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	go exitWithParent(*lifetime)
	handler := &xmlWrites{gcs: gcs, next: gcs.HTTPHandler(), uploads: map[string]*upload{}}
	log.Printf("fake-gcs listening on http://%s", addr)
	log.Fatal(http.Serve(listener, handler))
}

// exitWithParent ends the process when its parent is gone or the lifetime is over.
func exitWithParent(lifetime time.Duration) {
	parent, deadline := os.Getppid(), time.Now().Add(lifetime)
	for {
		if os.Getppid() != parent || time.Now().After(deadline) {
			os.Exit(0)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type upload struct {
	bucket, name string
	parts        map[int][]byte
}

// xmlWrites serves the XML API writes and hands every other request to fake-gcs-server.
type xmlWrites struct {
	gcs  *fakestorage.Server
	next http.Handler
	// Serializes writes, so that a create-only write sees every earlier one.
	mu      sync.Mutex
	uploads map[string]*upload
}

func (h *xmlWrites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	query := r.URL.Query()
	if !ok || name == "" || bucket == "storage" || bucket == "upload" || bucket == "download" ||
		bucket == "batch" || bucket == "_internal" || query.Has("uploadType") {
		h.next.ServeHTTP(w, r)
		return
	}
	switch {
	case r.Method == http.MethodPost && query.Has("uploads"):
		h.initiate(w, bucket, name)
	case r.Method == http.MethodPut && query.Has("uploadId") && query.Has("partNumber"):
		h.putPart(w, r, query.Get("uploadId"), query.Get("partNumber"))
	case r.Method == http.MethodPost && query.Has("uploadId"):
		h.complete(w, r, bucket, name, query.Get("uploadId"))
	case r.Method == http.MethodDelete && query.Has("uploadId"):
		h.abort(w, query.Get("uploadId"))
	case r.Method == http.MethodPut && r.Header.Get("X-Goog-Copy-Source") != "":
		h.copy(w, r, bucket, name)
	case r.Method == http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			xmlError(w, http.StatusBadRequest, "IncompleteBody", err.Error())
			return
		}
		h.store(w, r, bucket, name, body, r.Header.Get("Content-Type"))
	default:
		h.next.ServeHTTP(w, r)
	}
}

// store writes an object, honouring x-goog-if-generation-match: 0 (only if absent), and answers
// with its ETag and generation.
func (h *xmlWrites) store(w http.ResponseWriter, r *http.Request, bucket, name string, content []byte, contentType string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.create(w, r, bucket, name, content, contentType); ok {
		w.WriteHeader(http.StatusOK)
	}
}

func (h *xmlWrites) create(w http.ResponseWriter, r *http.Request, bucket, name string, content []byte, contentType string) (fakestorage.Object, bool) {
	if _, err := h.gcs.Backend().GetBucket(bucket); err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return fakestorage.Object{}, false
	}
	if match := r.Header.Get("X-Goog-If-Generation-Match"); match != "" {
		current := int64(0)
		if existing, err := h.gcs.GetObject(bucket, name); err == nil {
			current = existing.Generation
		}
		if strconv.FormatInt(current, 10) != match {
			xmlError(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
			return fakestorage.Object{}, false
		}
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	sum := md5.Sum(content)
	md5Hash := base64.StdEncoding.EncodeToString(sum[:])
	crc := make([]byte, 4)
	binary.BigEndian.PutUint32(crc, crc32.Checksum(content, crc32.MakeTable(crc32.Castagnoli)))
	now := time.Now().UTC()
	obj := fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{
			BucketName:  bucket,
			Name:        name,
			Size:        int64(len(content)),
			ContentType: contentType,
			Md5Hash:     md5Hash,
			Crc32c:      base64.StdEncoding.EncodeToString(crc),
			// What fake-gcs-server's reads answer as the ETag.
			Etag:       md5Hash,
			Created:    now,
			Updated:    now,
			Generation: now.UnixNano() / 1000,
		},
		Content: content,
	}
	if err := h.gcs.CreateObjectStreaming(obj.StreamingObject()); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return fakestorage.Object{}, false
	}
	w.Header().Set("ETag", strconv.Quote(obj.Etag))
	w.Header().Set("X-Goog-Generation", strconv.FormatInt(obj.Generation, 10))
	w.Header().Set("X-Goog-Hash", fmt.Sprintf("crc32c=%s,md5=%s", obj.Crc32c, obj.Md5Hash))
	return obj, true
}

func (h *xmlWrites) copy(w http.ResponseWriter, r *http.Request, bucket, name string) {
	source := strings.TrimPrefix(r.Header.Get("X-Goog-Copy-Source"), "/")
	if decoded, err := url.PathUnescape(source); err == nil {
		source = decoded
	}
	fromBucket, fromName, _ := strings.Cut(source, "/")
	from, err := h.gcs.GetObject(fromBucket, fromName)
	if err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	obj, ok := h.create(w, r, bucket, name, from.Content, from.ContentType)
	if !ok {
		return
	}
	writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		LastModified string   `xml:"LastModified"`
		ETag         string   `xml:"ETag"`
	}{LastModified: obj.Updated.Format(time.RFC3339Nano), ETag: strconv.Quote(obj.Etag)})
}

func (h *xmlWrites) initiate(w http.ResponseWriter, bucket, name string) {
	if _, err := h.gcs.Backend().GetBucket(bucket); err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	uploadID := hex.EncodeToString(id)
	h.mu.Lock()
	h.uploads[uploadID] = &upload{bucket: bucket, name: name, parts: map[int][]byte{}}
	h.mu.Unlock()
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{Bucket: bucket, Key: name, UploadID: uploadID})
}

func (h *xmlWrites) putPart(w http.ResponseWriter, r *http.Request, uploadID, partNumber string) {
	number, err := strconv.Atoi(partNumber)
	if err != nil || number < 1 || number > 10000 {
		xmlError(w, http.StatusBadRequest, "InvalidArgument", "partNumber must be 1 to 10000")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		xmlError(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	up, ok := h.uploads[uploadID]
	if !ok {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "The requested upload was not found.")
		return
	}
	up.parts[number] = body
	sum := md5.Sum(body)
	w.Header().Set("ETag", strconv.Quote(hex.EncodeToString(sum[:])))
	w.WriteHeader(http.StatusOK)
}

func (h *xmlWrites) complete(w http.ResponseWriter, r *http.Request, bucket, name, uploadID string) {
	var request struct {
		Parts []struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
		} `xml:"Part"`
	}
	if err := xml.NewDecoder(r.Body).Decode(&request); err != nil {
		xmlError(w, http.StatusBadRequest, "MalformedXML", err.Error())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	up, ok := h.uploads[uploadID]
	if !ok || up.bucket != bucket || up.name != name {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "The requested upload was not found.")
		return
	}
	if len(request.Parts) == 0 || !sort.SliceIsSorted(request.Parts, func(i, j int) bool {
		return request.Parts[i].PartNumber < request.Parts[j].PartNumber
	}) {
		xmlError(w, http.StatusBadRequest, "InvalidPartOrder", "parts must be given in ascending order")
		return
	}
	var content []byte
	for _, part := range request.Parts {
		data, ok := up.parts[part.PartNumber]
		sum := md5.Sum(data)
		if !ok || strings.Trim(part.ETag, `"`) != hex.EncodeToString(sum[:]) {
			xmlError(w, http.StatusBadRequest, "InvalidPart", fmt.Sprintf("part %d was not uploaded", part.PartNumber))
			return
		}
		content = append(content, data...)
	}
	obj, ok := h.create(w, r, bucket, name, content, "")
	if !ok {
		return
	}
	delete(h.uploads, uploadID)
	writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}{Location: "/" + bucket + "/" + name, Bucket: bucket, Key: name, ETag: strconv.Quote(obj.Etag)})
}

func (h *xmlWrites) abort(w http.ResponseWriter, uploadID string) {
	h.mu.Lock()
	_, ok := h.uploads[uploadID]
	delete(h.uploads, uploadID)
	h.mu.Unlock()
	if !ok {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "The requested upload was not found.")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeXML(w http.ResponseWriter, status int, body any) {
	out, err := xml.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func xmlError(w http.ResponseWriter, status int, code, message string) {
	writeXML(w, status, struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}{Code: code, Message: message})
}
